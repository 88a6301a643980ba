# SPDX-License-Identifier: Apache-2.0
"""SCPPM loopback simulation: random blocks -> CCSDS 142.0-B-1 transmitter -> Poisson (or SNSPD)
slot channel -> receiver -> error counts, with the gap to the Poisson PPM capacity limit.

Random draws (:class:`modem.sim.common.FrameStreams`): the information bits of codeword ``i`` come
from stream ``(PAYLOAD, i)`` and the slot counts of the ``i``-th transmitted codeword (the channel
interleaver's output, flush included) from stream ``(CHANNEL, i)``; the SNSPD dead time then runs
over the whole slot stream in order. So the counts depend on ``--seed`` and the link parameters,
not on ``--batch`` (codewords per decoder call) or on the backend that decodes; without a channel
interleaver the first N codewords of a longer run are those of ``--frames N``.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from .. import backend as be
from ..analysis.capacity import gap_db, ns_capacity_limit
from ..channel.poisson import SNSPD, apply_dead_time, simulate_counts
from ..errors import ConfigError
from ..fec.scppm import SCPPMCode, SCPPMReceiver, SCPPMTransmitter
from .common import ErrorCounter, FrameStreams, report

#: FrameStreams purposes: a codeword's information bits; a transmitted codeword's slot counts.
PAYLOAD, CHANNEL = 0, 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SCPPM code (CCSDS 142.0-B-1)")
    g.add_argument("--order", "-M", type=int, default=16, help="PPM order M: 4, 8, ..., 256 (default 16)")
    g.add_argument("--rate", default="1/2", help="outer code rate 1/3, 1/2 or 2/3 (default 1/2)")
    g.add_argument("--interleaver-rows", type=int, default=1, help="channel interleaver rows N (1 = off)")
    g.add_argument("--interleaver-shift", type=int, default=0, help="channel interleaver shift B in symbols")
    g.add_argument("--repetition", type=int, default=1, help="repeat factor q_d (1, 2, 3, 4, 8, 16, 32)")
    c = p.add_argument_group("Poisson channel")
    c.add_argument("--ns", type=float, default=1.6, help="mean signal photons per pulse (default 1.6)")
    c.add_argument("--nb", type=float, default=0.1, help="mean background photons per slot (default 0.1)")
    c.add_argument("--efficiency", type=float, default=None,
                   help="SNSPD detection efficiency (enables the detector model; ns, nb are then incident)")
    c.add_argument("--dark", type=float, default=0.0, help="SNSPD dark counts per slot")
    c.add_argument("--dead-time", type=int, default=0, help="SNSPD dead time in slots (blocks following slots)")
    d = p.add_argument_group("decoder")
    d.add_argument("--max-iter", type=int, default=16, help="maximum turbo iterations (default 16)")
    d.add_argument("--max-log", action="store_true", help="max-log-MAP instead of exact log-MAP")
    s = p.add_argument_group("run")
    s.add_argument("--frames", type=int, default=100, help="codewords to simulate (default 100)")
    s.add_argument("--batch", type=int, default=32,
                   help="codewords per decoder call (default 32); speed only, the counts do not depend on it")
    s.add_argument("--seed", type=int, default=1,
                   help="random seed >= 0 (default 1): one random stream per codeword, whatever --batch")


def _counts(pulses, first: int, ns, nb, streams: FrameStreams, detector: SNSPD | None):
    """Slot counts (F, slots) int32 of the transmitted codewords ``first .. first + F - 1``
    (``pulses`` (F, slots)), row r drawn from stream ``(CHANNEL, first + r)`` by
    :func:`simulate_counts` (each row as its own stream: dead time per row, see :func:`_dead_time_stream`)."""
    out = np.empty(pulses.shape, np.int32)
    for r in range(pulses.shape[0]):
        out[r] = simulate_counts(pulses[r], ns, nb, streams(CHANNEL, first + r), detector)
    return out


def _dead_time_stream(pulses, first: int, ns, nb, streams: FrameStreams, detector: SNSPD, tail):
    """Counts of ``pulses`` (F, slots), transmitted codewords ``first ..``, as one slot stream
    through ``detector``: its dead time runs on across codewords and from the previous batch
    (``tail``: that batch's last dead_time_slots kept counts; kept detections are more than
    dead_time_slots apart, so they stay kept here). The detections are drawn as :func:`_counts`
    draws them without dead time, then blocked along the stream. Returns (counts, tail)."""
    d = int(detector.dead_time_slots)
    clicks = _counts(pulses, first, ns, nb, streams, replace(detector, dead_time_slots=0))
    stream = apply_dead_time(np.concatenate([tail, clicks.reshape(-1)]), d)
    return stream[tail.size:].reshape(clicks.shape), stream[-d:]


def run(args, progress=None) -> dict:
    for name in ("frames", "batch"):
        v = getattr(args, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"scppm simulation: --{name} must be an integer >= 1, got {name}={v!r}")
    # the incident values, named as given (with a detector the decoder sees efficiency x ns, ...)
    for name in ("ns", "nb"):
        v = getattr(args, name)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not (np.isfinite(v) and v >= 0):
            raise ConfigError(f"scppm simulation: --{name} must be a finite number >= 0, got {name}={v!r}")
    # the decoder on the GPU where MODEM_BACKEND picks it (auto: where one is usable); max-log-MAP has
    # no kernel: under auto it decodes on the CPU, under gpu SCPPMDecoder refuses it (one line)
    launcher = None if args.max_log and be.requested_backend() != "gpu" else be.fec_launcher()
    backend = be.launcher_name(launcher)
    code = SCPPMCode(args.order, args.rate, interleaver_rows=args.interleaver_rows,
                     interleaver_shift=args.interleaver_shift, repetition=args.repetition)
    detector = None
    ns_det, nb_det = args.ns, args.nb
    if args.efficiency is not None or args.dead_time or args.dark:
        detector = SNSPD(efficiency=1.0 if args.efficiency is None else args.efficiency,
                         dark_count_rate_per_slot=args.dark, dead_time_slots=args.dead_time)
        ns_det = detector.efficiency * args.ns
        nb_det = detector.efficiency * args.nb + args.dark
    streams = FrameStreams(args.seed, "scppm simulation")
    tx = SCPPMTransmitter(code)
    rx = SCPPMReceiver(code, ns=ns_det, nb=nb_det, max_iter=args.max_iter, max_log=args.max_log,
                       ext_scale=0.75 if args.max_log else 1.0, launcher=launcher)
    counter = ErrorCounter()
    dead_tail = np.zeros(0, np.int32)   # the detector's last dead_time slots (kept counts), for the next batch
    sent = []          # information blocks in flight through the channel interleaver
    t_decode = 0.0
    t0 = time.perf_counter()
    done = 0           # codewords sent
    wire = 0           # codewords transmitted (interleaver output rows, flush included)
    while done < args.frames:
        n = min(args.batch, args.frames - done)
        u = np.empty((n, code.k), np.uint8)
        for r in range(n):
            u[r] = streams(PAYLOAD, done + r).integers(0, 2, code.k, dtype=np.uint8)
        sent.append(u)
        pulses = tx.modulate(u)
        if done + n >= args.frames:
            pulses = np.concatenate([pulses, tx.flush()]) if code.interleaver_rows > 1 else pulses
        if detector is not None and detector.dead_time_slots:
            y, dead_tail = _dead_time_stream(pulses, wire, args.ns, args.nb, streams, detector, dead_tail)
        else:
            y = _counts(pulses, wire, args.ns, args.nb, streams, detector)
        wire += pulses.shape[0]
        t1 = time.perf_counter()
        res = rx.receive(y)
        t_decode += time.perf_counter() - t1
        if len(res.crc_ok):
            u_ref = np.concatenate(sent)
            u_ref, rest = u_ref[: len(res.crc_ok)], u_ref[len(res.crc_ok):]
            sent = [rest]
            counter.update(u_ref, res.u_hat, res.iterations, res.crc_ok)
        done += n
        if progress is not None:
            progress(n)
    seconds = time.perf_counter() - t0
    params = {"M": args.order, "rate": args.rate, "ns": args.ns, "nb": args.nb, "max_iter": args.max_iter,
              "max_log": bool(args.max_log), "seed": args.seed, **{k: v for k, v in code.describe().items()
                                                                   if k not in ("M", "rate")}}
    if detector is not None:
        params["detector"] = {"efficiency": detector.efficiency, "dark_per_slot": args.dark,
                              "dead_time_slots": args.dead_time}
    limit = ns_capacity_limit(code.M, code.rate, nb_det, repetition=code.repetition)
    rep = report("scppm", counter, seconds, backend, params, backend_info=be.launcher_info(launcher),
                 decode_seconds=t_decode,
                 decode_info_bits_per_s=counter.info_bits / t_decode if t_decode > 0 else float("nan"),
                 capacity_limit_ns=limit, gap_db=gap_db(ns_det, limit), frames_requested=args.frames)
    return rep
