# SPDX-License-Identifier: Apache-2.0
"""DVB-S2 LDPC(+BCH) over burst-mode DPSK: random frames -> encoder -> pn8 randomizer -> channel
interleaver (depth in ms) -> ASM -> differential encoder -> AWGN or pre-amplified DLI receiver
(optionally with log-normal scintillation) -> exact LLRs -> ASM strip -> de-interleaver ->
de-randomizer -> LDPC decoder -> error counts.

Two ways of running an interleaver block of D codewords (``--frames-per-block``):

* ``0`` (default), **full chain**: every codeword of every block is encoded, interleaved, framed,
  differentially encoded and sent slot by slot through the channel (streamed in chunks with the
  differential-encoder, DLI and fading states), then decoded. ``--frames`` is rounded up to whole
  blocks of D codewords.
* ``1 <= K < D``, **sampled**: K codewords of each block (chosen at random) are simulated; each of
  their bits is sent at its true wire position (interleaver + ASM + burst format), so it sees the
  fade at its own time, with its own DLI slot pair (previous slot + its slot). Exact in
  distribution for each decoded codeword; the other D - K codewords of the block are not simulated.
  (Needs D >= 2, so that neighbouring bits of a codeword are not neighbours on the wire and their
  DLI noise is independent; ``K >= D`` runs the full chain.) ``--frames`` is rounded up to a
  multiple of K. This is what makes a 100-ms interleaver at 2.88 Gb/s (17 700 short frames per block) testable.

``--block-gap-ms G`` skips G ms of (unsimulated) link time after each block, so that fades seen by
successive blocks are nearly independent (correlation exp(-G/tau_c)) and the FER estimate is not
dominated by one fade. The first bit after a gap, each burst start (duty < 1) and the stream start
have no usable phase reference: LLR 0 (they fall on ASM bits or codeword bits as the format dictates).

LLRs are exact (non-central chi-square, reference section 8.2) and use the instantaneous
received energy ``I(t) E_b`` (the receiver tracks the slow scintillation power perfectly).

The report's ``frames`` is the number of frames decoded (``frames_requested`` the ``--frames``
asked for; a ``note_frames`` line says when they differ, a ``note_sampling`` line when
``--frames-per-block`` >= D ran the full chain). Random draws: one generator
(``numpy.random.default_rng(seed)``) drawn block after block in link order (sampled rows, information bits, then
the block's channel), so the counts depend on ``--seed`` and the link parameters, not on
``--batch`` (frames per decoder call), which only groups the decoded frames.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from .. import backend as be
from ..channel.awgn import AWGNChannel
from ..channel.fading import LognormalScintillation
from ..channel.optical import NF_IDEAL_DB, PreampDLIReceiver, dli_detect
from ..errors import ConfigError
from ..framing.interleaver import ChannelInterleaver
from ..framing.randomizer import pn8
from ..modulation import dpsk
from .common import ErrorCounter, check_seed, report

#: Channel bits per streamed chunk in the full chain.
CHUNK_BITS = 1 << 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("DVB-S2 code")
    g.add_argument("--frame", choices=("normal", "short"), default="short",
                   help="FECFRAME: normal (64800) or short (16200) (default short)")
    g.add_argument("--rate", default="1/2", help="code rate, e.g. 1/2, 3/5, 9/10 (default 1/2)")
    c = p.add_argument_group("channel")
    c.add_argument("--channel", choices=("awgn", "optical"), default="optical",
                   help="awgn (Es/N0 per DPSK symbol) or optical pre-amplified DLI receiver (default optical)")
    c.add_argument("--esn0", type=float, default=3.0, help="AWGN Es/N0 per DPSK symbol, dB (default 3.0)")
    c.add_argument("--ppb", type=float, default=2.0,
                   help="optical: mean received photons per DPSK (channel) bit (default 2.0)")
    c.add_argument("--nf", type=float, default=NF_IDEAL_DB,
                   help=f"optical: preamplifier noise figure, dB (default {NF_IDEAL_DB:.2f}, ideal)")
    c.add_argument("--modes", type=int, default=1, help="optical: filter modes per polarization M (default 1)")
    c.add_argument("--llr", choices=("exact", "gaussian"), default="exact",
                   help="LLR formula: exact non-central chi-square or Gaussian-moment (default exact)")
    f = p.add_argument_group("fading")
    f.add_argument("--fading", choices=("none", "lognormal"), default="none", help="scintillation model")
    f.add_argument("--scint-index", type=float, default=0.2, help="scintillation index (default 0.2)")
    f.add_argument("--coherence-ms", type=float, default=5.0, help="fade coherence time, ms (default 5)")
    w = p.add_argument_group("waveform and interleaver")
    w.add_argument("--data-rate", type=float, default=dpsk.SLOT_RATE,
                   help="data rate, bit/s: 2.88e9/m, m = 1..40 (duty cycle 1/m) (default 2.88e9)")
    w.add_argument("--burst-bits", type=int, default=4096, help="slots per burst when duty < 1 (default 4096)")
    w.add_argument("--interleaver-ms", type=float, default=0.0,
                   help="channel interleaver depth, ms of wire time (0 = none) (default 0)")
    w.add_argument("--frames-per-block", type=int, default=0,
                   help="0 (or >= depth): full chain, every frame of each interleaver block; K: decode K sampled "
                        "frames per block (--frames is then rounded up to a multiple of K)")
    w.add_argument("--block-gap-ms", type=float, default=0.0,
                   help="unsimulated link time skipped after each interleaver block, ms (default 0)")
    d = p.add_argument_group("decoder and run")
    d.add_argument("--max-iter", type=int, default=50, help="maximum LDPC iterations (default 50)")
    d.add_argument("--frames", type=int, default=100,
                   help="frames to decode (default 100), rounded up to whole interleaver blocks (to a multiple "
                        "of --frames-per-block when sampled); the report gives the number decoded")
    d.add_argument("--batch", type=int, default=32,
                   help="frames per decoder call (default 32); speed only, the counts do not depend on it")
    d.add_argument("--seed", type=int, default=1, help="random seed >= 0 (default 1)")


def default_args(**overrides) -> argparse.Namespace:
    """The CLI defaults as a Namespace, with keyword overrides (``coherence_ms=5``, ...)."""
    p = argparse.ArgumentParser()
    add_arguments(p)
    ns = p.parse_args([])
    for k, v in overrides.items():
        if not hasattr(ns, k):
            raise ConfigError(f"dpsk simulation: unknown option {k!r}")
        setattr(ns, k, v)
    return ns


def _check(args):
    def pos_int(name, lo):
        v = getattr(args, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ConfigError(f"dpsk simulation: --{name.replace('_', '-')} must be an integer >= {lo}, "
                              f"got {name}={v!r}")

    for name, lo in (("frames", 1), ("batch", 1), ("max_iter", 1), ("frames_per_block", 0)):
        pos_int(name, lo)
    check_seed(args.seed, "dpsk simulation")
    for name in ("block_gap_ms", "interleaver_ms"):
        v = getattr(args, name)
        if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
            raise ConfigError(f"dpsk simulation: --{name.replace('_', '-')} must be finite and >= 0, got {name}={v!r}")
    v = args.coherence_ms       # named as given (LognormalScintillation names the value in seconds)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (np.isfinite(v) and v > 0):
        raise ConfigError(f"dpsk simulation: --coherence-ms must be finite and > 0, got coherence_ms={v!r}")
    if args.frame not in ("normal", "short"):
        raise ConfigError(f"dpsk simulation: --frame must be normal or short, got frame={args.frame!r}")
    if args.channel not in ("awgn", "optical"):
        raise ConfigError(f"dpsk simulation: --channel must be awgn or optical, got channel={args.channel!r}")
    if args.fading not in ("none", "lognormal"):
        raise ConfigError(f"dpsk simulation: --fading must be none or lognormal, got fading={args.fading!r}")
    if args.llr not in ("exact", "gaussian"):
        raise ConfigError(f"dpsk simulation: --llr must be exact or gaussian, got llr={args.llr!r}")


class _Link:
    """Everything between the codewords and their LLRs, with the streaming states."""

    def __init__(self, args, n: int):
        self.n = n
        self.n_tx = n + dpsk.ASM_LEN
        self.fmt = dpsk.BurstFormat.from_data_rate(args.data_rate, burst_bits=args.burst_bits)
        if args.channel == "awgn":
            self.ch = AWGNChannel(args.esn0)
        else:
            self.ch = PreampDLIReceiver(args.ppb, args.nf, args.modes)
        self.fading = (LognormalScintillation(args.scint_index, args.coherence_ms * 1e-3)
                       if args.fading == "lognormal" else None)
        self.il = ChannelInterleaver.from_ms(args.interleaver_ms, n, self.fmt.data_rate, frame_bits=self.n_tx)
        self.llr_fn = dpsk.llr_exact if args.llr == "exact" else dpsk.llr_gaussian
        self.gap_bits = int(round(args.block_gap_ms * 1e-3 * self.fmt.data_rate))
        self.w = 0                 # wire index of the next block's first bit
        self.fade_state = None
        self.diff_state = None
        self.dli_state = None
        self.raw_errors = 0
        self.raw_bits = 0

    def _intensity(self, w, rng):
        """Fading intensity at wire indices ``w`` (any order); advances the fade state."""
        if self.fading is None:
            return None
        order = np.argsort(w, kind="stable")
        I_sorted, self.fade_state = self.fading.sample(self.fmt.bit_time(w[order]), rng, self.fade_state)
        I = np.empty_like(I_sorted)
        I[order] = I_sorted
        return I

    def _llr(self, xa, xb, gain, erase):
        es = self.ch.es if gain is None else self.ch.es * gain
        return self.llr_fn(xa, xb, es, self.ch.sigma2, self.ch.modes, erase=erase)

    def _count_raw(self, llr, bits):
        known = llr != 0
        self.raw_errors += int(np.count_nonzero((llr < 0)[known] != (bits[known] == 1)))
        self.raw_bits += int(np.count_nonzero(known))

    def full_block(self, c_rand, rng) -> np.ndarray:
        """Randomized codewords (D, n) of one block -> their channel LLRs (D, n) (before de-randomizing)."""
        D, n, n_tx = self.il.depth, self.n, self.n_tx
        wire = dpsk.attach_asm(self.il.interleave(c_rand.reshape(-1)).reshape(D, n)).reshape(-1)
        llr = np.empty(wire.size, dtype=np.float32)
        w0 = self.w
        for a in range(0, wire.size, CHUNK_BITS):
            bits = wire[a:a + CHUNK_BITS]
            w = w0 + a + np.arange(bits.size, dtype=np.int64)
            x, self.diff_state = dpsk.differential_encode(bits, self.diff_state)
            gain = self._intensity(w, rng)
            dark = self.fmt.burst_start(w)
            xa, xb, self.dli_state = dli_detect(self.ch, dpsk.dpsk_field(x), rng, gain=gain,
                                                dark_prev=dark, state=self.dli_state)
            if a == 0 and self.gap_bits:          # slot before the block was not simulated
                dark = dark.copy()
                dark[0] = True
            llr[a:a + bits.size] = self._llr(xa, xb, gain, dark)
            self._count_raw(llr[a:a + bits.size], bits)
        self.w = w0 + wire.size + self.gap_bits
        if self.gap_bits:
            self.dli_state = None
        rx = dpsk.strip_asm(llr.reshape(D, n_tx), n).reshape(-1)
        return self.il.deinterleave(rx).reshape(D, n)

    def sampled_block(self, c_rand, rows, rng) -> np.ndarray:
        """Randomized codewords (K, n) at rows ``rows`` of a block -> channel LLRs (K, n)."""
        n, n_tx, D = self.n, self.n_tx, self.il.depth
        q = self.il.channel_position(np.asarray(rows)[:, None], np.arange(n)[None, :])     # (K, n)
        w = self.w + (q // n) * n_tx + dpsk.ASM_LEN + q % n
        gain = self._intensity(w.reshape(-1), rng)
        gain = None if gain is None else gain.reshape(w.shape)
        # each bit: its previous slot (phase reference) and its slot; absolute phase is irrelevant
        x = np.stack([np.ones(c_rand.shape), 1.0 - 2.0 * c_rand], axis=-1).astype(np.complex128)
        g2 = None if gain is None else np.repeat(gain[..., None], 2, axis=-1)
        xa, xb, _ = dli_detect(self.ch, x, rng, gain=g2)
        dark = self.fmt.burst_start(w)
        if self.gap_bits:
            dark = dark | (w == self.w)
        llr = self._llr(xa[..., 1], xb[..., 1], gain, dark)
        self._count_raw(llr, c_rand)
        self.w += D * n_tx + self.gap_bits
        return llr


def run(args, progress=None) -> dict:
    """Run the simulation described by ``args`` (see :func:`add_arguments`); return the report."""
    from ..fec import dvbs2  # noqa: PLC0415  (the FEC package is imported only when simulating)

    _check(args)
    launcher = be.fec_launcher()         # the LDPC + BCH decoder on the GPU where MODEM_BACKEND picks it
    backend = be.launcher_name(launcher)
    code = dvbs2.code(args.frame, args.rate)
    k, n = int(code.k), int(code.n)
    rng = np.random.default_rng(args.seed)
    link = _Link(args, n)
    D = link.il.depth
    K = args.frames_per_block
    sign = (1.0 - 2.0 * pn8(n)).astype(np.float32)
    counter = ErrorCounter()
    t_decode = 0.0
    t0 = time.perf_counter()
    blocks = 0

    def decode(u, llr):
        nonlocal t_decode
        for a in range(0, u.shape[0], args.batch):
            t1 = time.perf_counter()
            res = code.decode(llr[a:a + args.batch], max_iter=args.max_iter, launcher=launcher)
            t_decode += time.perf_counter() - t1
            counter.update(u[a:a + args.batch], np.asarray(res.u_hat), np.asarray(res.iterations),
                           np.asarray(res.valid))
            if progress is not None:
                progress(min(args.batch, u.shape[0] - a))

    pend_u, pend_llr, pending = [], [], 0
    sampled = 0 < K < D          # K >= D: every frame of the block, i.e. the full chain
    while counter.frames + pending < args.frames:
        blocks += 1
        if not sampled:
            u = rng.integers(0, 2, (D, k), dtype=np.uint8)
            llr = link.full_block(code.encode(u) ^ pn8(n), rng)
        else:
            rows = np.sort(rng.choice(D, size=K, replace=False))
            u = rng.integers(0, 2, (K, k), dtype=np.uint8)
            llr = link.sampled_block(code.encode(u) ^ pn8(n), rows, rng)
        pend_u.append(u)
        pend_llr.append(llr * sign)
        pending += u.shape[0]
        if pending >= args.batch or counter.frames + pending >= args.frames:
            decode(np.concatenate(pend_u), np.concatenate(pend_llr))
            pend_u, pend_llr, pending = [], [], 0
    seconds = time.perf_counter() - t0

    fmt, ch = link.fmt, link.ch
    params = {"frame": args.frame, "rate": args.rate, "k": k, "n": n, "channel": args.channel,
              "llr": args.llr, "max_iter": args.max_iter, "seed": args.seed, "batch": args.batch,
              "data_rate": fmt.data_rate, "duty_cycle": str(fmt.duty),
              "burst_bits": None if fmt.continuous else fmt.burst_bits,
              "fading": args.fading, "interleaver_ms": args.interleaver_ms,
              "frames_per_block": K, "block_gap_ms": args.block_gap_ms}
    if args.channel == "awgn":
        params.update(esn0_db=args.esn0)
    else:
        params.update(ppb=args.ppb, nf_db=args.nf, modes=args.modes, ebn0_db=ch.ebn0_db,
                      photons_per_info_bit=args.ppb * link.n_tx / k)
    if args.fading == "lognormal":
        params.update(scint_index=args.scint_index, coherence_ms=args.coherence_ms)
    raw_ber = link.raw_errors / link.raw_bits if link.raw_bits else float("nan")
    extra = {}
    if counter.frames != args.frames:
        per = f"{K} sampled frames per interleaver block" if sampled else f"whole interleaver blocks of {D} frames"
        extra["note_frames"] = f"--frames {args.frames} rounded up to {counter.frames} ({per})"
    if K and not sampled:
        extra["note_sampling"] = (f"--frames-per-block {K} >= interleaver depth {D}: every frame of each block "
                                  f"simulated (full chain)")
    return report("dpsk", counter, seconds, backend, params, backend_info=be.launcher_info(launcher),
                  interleaver=link.il.describe(),
                  interleaver_latency_s=link.il.latency_s, interleaver_memory_bits=link.il.memory_bits,
                  interleaver_blocks=blocks, simulated_link_s=float(fmt.bit_time(link.w)),
                  raw_bit_errors=link.raw_errors, raw_bits=link.raw_bits, raw_ber=raw_ber,
                  decode_seconds=t_decode,
                  decode_info_bits_per_s=counter.info_bits / t_decode if t_decode > 0 else float("nan"),
                  frames_requested=args.frames, **extra)
