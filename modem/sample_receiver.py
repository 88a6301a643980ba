# SPDX-License-Identifier: Apache-2.0
"""Sample-domain ground receivers: raw ADC samples in, checked CCSDS transfer frames out.

Two chains, each a streaming receiver object (``push(samples) -> [ReceivedFrame]``, ``flush()``,
``stats``, ``reset()``) plus the matching transmitter (TM frames -> samples) and a frozen link
dataclass whose fields are the **dict-key schema** used by the offline (SigMF) and real-time
(ZeroMQ) paths: ``Link.to_dict()`` / ``Receiver.from_dict(d)`` / :func:`receiver_from_dict`.

SCPPM over an APD (:class:`SCPPMSampleReceiver`)::

    ADC samples -> SampleFrontEnd (Gaussian matched filter, PI timing loop, frozen while the mean
                   MF output says "no signal": gaps of zeros or noise do not drag the clock)
                -> slot LLRs lambda(z) = ln p(z | pulse) - ln p(z | empty), APD output as a Poisson
                   mixture of Gaussians (APDSlotLLR), clipped to +-30
                -> SlotCSMSync: codeword sync on the CSM at *slot* resolution (the front end's slot
                   numbering has no symbol phase), Massey/Poisson-style score on slot LLRs,
                   +-1 slot slip tracking, flywheel
                -> SCPPMDecoder (symbol metrics = slot LLRs of the M data slots, CRC-32 per codeword)
                -> k-bit blocks -> soft ASM frame sync -> TM frame, FECF check

DPSK over a pre-amplified balanced receiver (:class:`DPSKSampleReceiver`)::

    ADC samples -> SampleFrontEnd (timing loop gated by a z^2 signal detector and, in burst mode,
                   by burst detection; feed-forward phase acquisition when the signal first appears;
                   burst-periodic mode, re-acquiring before every burst, for bursts shorter than
                   1024 bits or gaps over 4096 slots: DPSKLink.burst_periodic)
                -> BurstGrid: burst positions from the energy folded over the burst period
                   (duty < 1 only; the first bit of every burst is erased; breaks where a burst is
                   not the one after the last: the grid moved to other bursts)
                -> Gaussian-moment bit LLRs (dpsk_bit_llr)
                -> polarity-free soft ASM frame sync per DVB-S2 FEC frame (ASM + randomized codeword;
                   without an interleaver the marker is integrated over up to 4 frame periods and a
                   new lock must decode its first frame; no lock across a break)
                -> pn8 de-randomization -> DVB-S2 LDPC + BCH decoding
                -> k-bit blocks -> soft ASM frame sync -> TM frame, FECF check

Conventions: samples are real 1-D arrays (int or float dtype, finite), any chunking; bits MSB
first; LLR positive = bit 0; time of a frame = the input sample position (``t_sample``, sample 0 =
first sample pushed since ``reset``) of the first slot of the codeword (FEC frame) that carried the
frame's ASM, and ``t_ps = t_sample / sample_rate_hz * 1e12`` on the receiver's own sample clock.

Sync events (``stats.events``, :class:`modem.sync.slot_clock.SyncEvent`, receiver ps):
``acquired`` when codeword sync (SCPPM) / FEC-frame sync (DPSK) locks, ``loss_of_signal`` when it
gives the lock up (``t_end_ps`` = the next ``acquired``), ``slip`` when SCPPM codeword sync
re-times by one slot (``info["slots"]``).

Per-frame status (:class:`modem.receiver.ReceivedFrame`): ``crc_ok`` = every codeword that carried
the frame decoded as valid (SCPPM: CRC-32; DPSK: LDPC parity checks hold and BCH did not fail),
``fecf_ok`` = the TM frame's own CRC-16, ``valid`` = both; ``fec`` = one tuple per carrying
codeword: SCPPM ``(crc_ok, iterations, csm_llr, csm_locked)``, DPSK ``(parity_ok, bch_corrected,
iterations, asm_metric)`` (``bch_corrected = -1``: BCH failure). Codewords that fail enter the TM
frame synchroniser as erasures, so no unchecked data ever comes out as valid.

DVB-S2 channel interleaver (:mod:`modem.framing.interleaver`, ``interleaver_ms``): a block
interleaver over D FEC frames whose boundaries are not marked on the wire (every FEC frame carries
the same ASM). The receiver finds them from the code itself: once 2D-1 contiguous FEC frames are
in, each of the D block phases is de-interleaved and the unsatisfied LDPC parity checks of the hard
decisions are counted; the right phase leaves only the channel errors (e.g. 257 of 36000 checks at
6 photons/bit), a wrong one about half (~18000). The phase is kept while the FEC-frame stream stays
contiguous and found again after a discontinuity (the block in progress is then lost). Decoded
codewords of a block carry the time of the block's first wire frame.

SCPPM convolutional channel interleaver (``interleaver_rows`` N > 1, ``interleaver_shift`` B): the
CSM is attached after it, so codeword sync is unchanged; the symbol metrics of every codeword go
through the streaming de-interleaver, whose first ``B N (N-1)`` output symbols (fill) are skipped.
A decoded codeword carries the time and CSM status of the received codeword that completed it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numba
import numpy as np

from .channel.apd import APDDetector, SampleClock, apd_samples, apd_slot_moments, dpsk_balanced_samples
from .channel.optical import NF_IDEAL_DB, PreampDLIReceiver
from .backend import default_decode_batch
from .errors import BackendUnavailable, ConfigError, ShapeError
from .fec.scppm import CodewordDeinterleaver, SCPPMCode, SCPPMDecoder, SCPPMTransmitter
from .fec.scppm.encoder import attach_asm as _attach_tm_asm
from .fec.scppm.encoder import slice_blocks
from .framing.bits import unpack_bytes
from .framing.interleaver import ChannelInterleaver
from .framing.packets import TMPacketizer, build_space_packet
from .framing.randomizer import pn8
from .framing.tm import TMFrameSpec
from .modulation import dpsk as _dpsk
from .receiver import CodewordHold, ReceivedFrame, ReceiverStats, TMDeframer, deliver_codewords
from .sync.codeword_sync import csm_llr, csm_llr_slot_offsets
from .sync.frame_sync import ASMFrameSync, FrameSyncConfig, SyncMode
from .sync.slot_clock import SyncEvent
from .sync.samples import (FrontEndConfig, SampleFrontEnd, dpsk_bit_llr, gaussian_slot_llr, matched_filter_taps,
                           ppm_symbol_metric)

#: slot LLRs are clipped to +-this: the probability-domain SCPPM decoder needs symbol metrics
#: within ~+-60 of each other (a single Gaussian model once gave 1900 on a heavy gamma tail)
SLOT_LLR_CLIP = 30.0

#: FEC-frame ASM synchroniser defaults (DPSK): polarity-free Massey rule; LDPC + BCH check every
#: frame, so a lock is taken on the first marker (check_count 0) instead of losing two FEC frames.
FEC_SYNC_DEFAULTS = {"polarity_free": True, "check_count": 0}

#: ... and without a channel interleaver, where every SEARCH candidate is confirmed by decoding its
#: first FEC frame (:meth:`DPSKSampleReceiver._confirm`): the marker is also integrated over up to 4
#: FEC-frame periods (non-coherent sum of the polarity-free Massey metrics, see
#: :class:`FrameSyncConfig`), so that a record none of whose markers reaches the single-marker
#: threshold (12) is still found. False SEARCH hits on random data: at most P (e^-12 + 3 e^-14)
#: per FEC-frame period of P positions (Markov bound, calibrated LLRs): 0.14 for short frames
#: (P = 16232), 0.56 for normal ones, each costing one rejected decode; a false *lock* would need
#: random data to pass the LDPC checks and BCH. With an interleaver (frames cannot be decoded one
#: by one) neither is used: see ``FEC_SYNC_INTERLEAVED``.
FEC_SYNC_INTEGRATE = {"search_periods": 4, "integrate_threshold": 14.0}

#: ... and with a channel interleaver, whose FEC frames cannot be decoded one by one: a candidate
#: is confirmed by the next marker passing the lock threshold at the expected place +- slip
#: (CHECK, ``check_count`` 1; a rejected one sends SEARCH to the bit after it); the candidate's
#: own frame, not emitted by CHECK, comes back through the look-back (its marker passed the search
#: threshold).
FEC_SYNC_INTERLEAVED = {"check_count": 1}

#: FEC frames the DPSK receiver looks back for at a new lock (:class:`DPSKSampleReceiver` ``lookback``).
#: At 1.4-1.8 photons/bit the ASM of a FEC frame reaches the search threshold (Massey 12) only
#: about half the time (mean 11.2 / 12.6 / 13.9 at 1.4 / 1.6 / 1.8; random data reaches 10.8-11.9 in
#: 387k positions, so the threshold cannot come down), and the first marker of a record less often
#: still (mean 6.9 / 8.8 / 10.3: its first bits are read before the timing acquisition, up to
#: 0.4 slot off): the first lock came 1-5 FEC frames into the record, and those frames were lost
#: although they decode.
LOOKBACK_FRAMES = 8

__all__ = ["SCPPMAPDLink", "DPSKLink", "APDSlotLLR", "SCPPMSampleReceiver", "DPSKSampleReceiver", "SlotCSMSync",
           "SlotCSMSyncState", "CodewordSlots", "BurstGrid", "BurstGridState", "scppm_apd_transmit",
           "dpsk_transmit_frames", "random_tm_frames", "tm_blocks", "link_from_dict", "receiver_from_dict"]


# =================================================================================================
# helpers shared by both chains


def random_tm_frames(spec: TMFrameSpec, n_frames: int, seed=0) -> list[bytes]:
    """``n_frames`` TM transfer frames (bytes) of ``spec`` carrying random-length space packets."""
    rng = np.random.default_rng(seed)
    pz = TMPacketizer(spec)
    st = pz.initial_state()
    frames: list[bytes] = []
    i = 0
    while len(frames) < n_frames:
        pk = build_space_packet(0x100 + (i % 5), rng.bytes(int(rng.integers(20, 600))), seq_count=i % 16384)
        out, st = pz.push([pk], st)
        frames += out
        i += 1
    return frames[:n_frames]


def tm_blocks(frames, spec: TMFrameSpec, k: int) -> np.ndarray:
    """TM frames -> ASM 0x1ACFFC1D + frame, back to back -> ``(n_blocks, k)`` uint8 blocks (last zero-filled).

    The same slicing feeds the SCPPM encoder and the DVB-S2 encoder (its k = K_bch information bits).
    """
    frames = list(frames)
    if not frames:
        return np.zeros((0, k), np.uint8)
    for i, f in enumerate(frames):
        if not isinstance(f, (bytes, bytearray)) or len(f) != spec.frame_len:
            raise ShapeError(f"tm_blocks: frame {i} must be {spec.frame_len} bytes, got "
                             f"{len(f) if isinstance(f, (bytes, bytearray)) else type(f).__name__}")
    bits = np.stack([unpack_bytes(bytes(f)) for f in frames])
    return slice_blocks(_attach_tm_asm(bits).reshape(-1), k)


def _strip_prefix(d: dict) -> dict:
    """Keys may carry the SigMF namespace prefix ``modem:``; it is removed."""
    if not isinstance(d, dict):
        raise ConfigError(f"link parameters must be a dict, got {type(d).__name__}")
    return {(k[6:] if isinstance(k, str) and k.startswith("modem:") else k): v for k, v in d.items()}


class _LinkBase:
    chain: ClassVar[str] = ""
    #: fields that only the channel simulation (transmit helper) uses; the receiver ignores them
    SIM_ONLY: ClassVar[tuple] = ("ppm", "phase")

    def to_dict(self) -> dict:
        """Plain dict (JSON-safe values) with ``"chain"``; the inverse of :meth:`from_dict`."""
        d = {"chain": self.chain}
        d.update(dataclasses.asdict(self))
        return d

    @classmethod
    def from_dict(cls, d: dict, strict: bool = True):
        """Build from a dict of the field names (optionally prefixed ``modem:``); missing keys take
        the defaults. ``strict``: unknown keys raise ConfigError (else they are ignored)."""
        d = _strip_prefix(d)
        chain = d.pop("chain", cls.chain)
        if chain != cls.chain:
            raise ConfigError(f"{cls.__name__}.from_dict: chain must be {cls.chain!r}, got chain={chain!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in d if k not in names)
        if unknown and strict:
            raise ConfigError(f"{cls.__name__}.from_dict: unknown key(s) {unknown}; known: {sorted(names)}")
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def sample_rate_hz(self) -> float:
        """Nominal ADC sample rate ``slot_rate_hz * sps``."""
        return self.slot_rate_hz * self.sps

    @property
    def spec(self) -> TMFrameSpec:
        return TMFrameSpec(frame_len=self.frame_len, scid=self.scid, vcid=self.vcid, ocf=self.ocf, fecf=self.fecf)

    @property
    def clock(self) -> SampleClock:
        """The simulated ADC clock (uses the simulation-only ``ppm`` and ``phase``)."""
        return SampleClock(sps=self.sps, pulse_sigma=self.pulse_sigma, ppm=self.ppm, phase=self.phase,
                           adc_bits=self.adc_bits, full_scale=self.full_scale)

    def _check_common(self):
        who = type(self).__name__
        for name in ("max_iter",):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 1000:
                raise ConfigError(f"{who}: {name} must be an integer in 1..1000, got {name}={v!r}")
        v = self.slot_rate_hz
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not (math.isfinite(float(v)) and float(v) > 0):
            raise ConfigError(f"{who}: slot_rate_hz must be a finite number > 0, got slot_rate_hz={v!r}")
        self.spec, self.clock  # noqa: B018  (validates the TM and sampling parameters)

    def _frontend_config(self, **extra) -> FrontEndConfig:
        return FrontEndConfig(sps=self.sps, pulse_sigma=self.pulse_sigma, loop_bw=self.timing_loop_bw, **extra)

    @property
    def timing_loop_bw(self) -> float:
        """The timing loop bandwidth the receiver uses (``loop_bw``)."""
        return self.loop_bw

    @property
    def adc_noise_var(self) -> float:
        """Quantisation noise variance per sample, ``lsb^2 / 12`` (0 without ADC)."""
        return 0.0 if self.adc_bits is None else self.clock.lsb ** 2 / 12.0


def _record_event(stats: ReceiverStats, kind: str, t_ps: float, info: dict):
    """Append a :class:`SyncEvent` to ``stats.events``; an ``acquired`` closes an open
    ``loss_of_signal`` (its ``t_end_ps``)."""
    ev = stats.events
    if kind == "acquired" and ev and ev[-1].kind == "loss_of_signal" and ev[-1].t_end_ps is None:
        ev[-1] = dataclasses.replace(ev[-1], t_end_ps=t_ps)
    ev.append(SyncEvent(kind, t_ps, None, dict(info)))


# =================================================================================================
# SCPPM over an APD


class APDSlotLLR:
    """Slot LLR ``ln p(z | pulse) - ln p(z | empty)`` of an APD matched-filter output ``z``, as a
    Poisson mixture of Gaussians, tabulated.

    Model: ``N ~ Poisson(n)`` primaries (``n = ns + nb`` or ``nb``), avalanche output ``q | N`` with
    mean ``G N`` and variance ``G^2 (F - 1) N`` (the moments of the gamma model of
    :class:`modem.channel.apd.APDDetector`), plus Gaussian thermal/ADC noise ``noise_var`` after the
    matched filter: ``p(z | n) = sum_N Pois(N; n) N(z; G N, G^2 (F-1) N + noise_var)``. Unlike the
    single Gaussian of :func:`modem.sync.samples.gaussian_slot_llr` (moment-matched over N, whose
    LLR grows quadratically in z and wildly overstates bright slots), its LLR grows about linearly
    per extra photoelectron. Measured on the M=16 rate-1/2 code, G=50, k=0.02, thermal 20 e-/sample,
    nb=0.1, genie timing: the mixture decodes 10/10 codewords at ns=3.5 (4-5 iterations) and 8/10
    at ns=3, where the single Gaussian decodes none at any clip level (about 0.7 dB).

    The LLR is made non-decreasing in z (right-minimum hull: the Gaussian stand-ins of the N >= 1
    outputs would otherwise favour a pulse again far below 0), tabulated on ``n_points`` values of
    z over ``[-8 sd0, G (ns+nb) + 12 sd1]`` and interpolated linearly (``np.interp``; beyond the ends it holds the end values).
    ``__call__(z) -> float64 LLRs`` (positive = pulse).
    """

    def __init__(self, apd: APDDetector, ns: float, nb: float, noise_var: float, n_points: int = 4096):
        from scipy.special import gammaln, logsumexp  # noqa: PLC0415
        if not isinstance(apd, APDDetector):
            raise ConfigError(f"APDSlotLLR: apd must be an APDDetector, got {type(apd).__name__}")
        for name, v, positive in (("ns", ns, True), ("nb", nb, False), ("noise_var", noise_var, False)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not (math.isfinite(float(v)) and (float(v) > 0 if positive else float(v) >= 0)):
                raise ConfigError(f"APDSlotLLR: {name} must be a finite number {'> 0' if positive else '>= 0'}, "
                                  f"got {name}={v!r}")
        if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or not 16 <= n_points <= 1 << 24:
            raise ConfigError(f"APDSlotLLR: n_points must be an integer in 16..{1 << 24}, got n_points={n_points!r}")
        G, F = apd.gain, apd.excess_noise_factor
        n1 = float(ns) + float(nb)
        floor = (1e-3 * G) ** 2                  # N = 0 without thermal noise: a narrow spike at 0
        sd0 = math.sqrt(G * G * F * nb + noise_var + floor)
        sd1 = math.sqrt(G * G * F * n1 + noise_var + floor)
        n_max = int(n1 + 12.0 * math.sqrt(n1) + 12)
        N = np.arange(n_max + 1, dtype=np.float64)
        self.z = np.linspace(-8.0 * sd0, G * n1 + 12.0 * sd1, int(n_points))
        var = G * G * max(F - 1.0, 0.0) * N + noise_var + floor
        lg = -0.5 * np.log(2 * np.pi * var)[None, :] - (self.z[:, None] - G * N[None, :]) ** 2 / (2 * var[None, :])

        def log_p(n):
            if n <= 0:
                return lg[:, 0]
            return logsumexp(lg + (N * math.log(n) - n - gammaln(N + 1))[None, :], axis=1)

        llr = log_p(n1) - log_p(float(nb))
        # below z ~ 0 the Gaussian stand-ins for the (non-negative) gamma outputs of N >= 1 put
        # spurious mass at negative z, where the wider pulse hypothesis would win again; the LLR
        # of these families is non-decreasing in z, so take the monotone (right-minimum) hull
        self.llr = np.minimum.accumulate(llr[::-1])[::-1]

    def __call__(self, z) -> np.ndarray:
        return np.interp(np.asarray(z, dtype=np.float64), self.z, self.llr)



@dataclass(frozen=True)
class SCPPMAPDLink(_LinkBase):
    """SCPPM-over-APD link parameters: the dict-key schema of :class:`SCPPMSampleReceiver`.

    Keys (``to_dict()`` adds ``"chain": "scppm-apd"``; SigMF metadata may prefix them ``modem:``)
    ------------------------------------------------------------------------------------------
    M, rate, interleaver_rows, interleaver_shift, repetition : SCPPM code (:class:`SCPPMCode`;
        channel interleaver rows N and shift B in symbols, N = 1: none; repeat factor q_d, each
        symbol repeated, ``repeat_unit="symbol"``).
    frame_len, scid, vcid, ocf, fecf : TM transfer frames (:class:`TMFrameSpec`; frame_len in octets).
    ns, nb : mean signal primary photoelectrons per pulse, background photoelectrons per slot.
    apd_gain, apd_k_eff, thermal_sigma : :class:`APDDetector` (thermal_sigma: rms noise per sample, in
        output electrons, the sample unit).
    slot_rate_hz : PPM slot rate (Hz); the nominal ADC rate is ``slot_rate_hz * sps``.
    sps, pulse_sigma : nominal samples per slot and Gaussian pulse rms width in slots.
    adc_bits, full_scale : ADC resolution (None = float samples) and clipping level (sample units).
    ppm, phase : simulation only (ADC clock offset in ppm, phase of sample 0 in slots).
    loop_bw : timing loop noise bandwidth B_L T.   max_iter : SCPPM turbo iteration cap.
    """

    chain: ClassVar[str] = "scppm-apd"

    M: int = 16
    rate: str = "1/2"
    interleaver_rows: int = 1
    interleaver_shift: int = 0
    repetition: int = 1
    frame_len: int = 1115
    scid: int = 0
    vcid: int = 0
    ocf: bool = False
    fecf: bool = True
    ns: float = 8.0
    nb: float = 0.1
    apd_gain: float = 50.0
    apd_k_eff: float = 0.02
    thermal_sigma: float = 20.0
    slot_rate_hz: float = 1e9
    sps: float = 4.0
    pulse_sigma: float = 0.25
    adc_bits: int | None = 12
    full_scale: float = 4000.0
    ppm: float = 0.0
    phase: float = 0.0
    loop_bw: float = 0.002
    max_iter: int = 16

    def __post_init__(self):
        who = "SCPPMAPDLink"
        self.code  # noqa: B018
        self.apd  # noqa: B018
        for name in ("ns", "nb"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not (math.isfinite(float(v)) and float(v) >= 0) or (name == "ns" and float(v) == 0):
                raise ConfigError(f"{who}: {name} must be a finite number {'> 0' if name == 'ns' else '>= 0'}, "
                                  f"got {name}={v!r}")
        self._check_common()
        self._frontend_config()

    @property
    def code(self) -> SCPPMCode:
        return SCPPMCode(M=self.M, rate=self.rate, interleaver_rows=self.interleaver_rows,
                         interleaver_shift=self.interleaver_shift, repetition=self.repetition)

    @property
    def apd(self) -> APDDetector:
        return APDDetector(gain=self.apd_gain, k_eff=self.apd_k_eff, thermal_sigma=self.thermal_sigma)


def _intensity(scintillation, t_s, rng) -> np.ndarray:
    """Received intensity factor at times ``t_s`` (seconds, non-decreasing): a
    :class:`modem.channel.fading.LognormalScintillation` (sampled with ``rng``) or a callable
    ``I(t_s) -> array`` (float, >= 0, the shape of ``t_s``)."""
    from .channel.fading import LognormalScintillation  # noqa: PLC0415
    if isinstance(scintillation, LognormalScintillation):
        fade, _ = scintillation.sample(t_s, rng)
        return fade
    if not callable(scintillation):
        raise ConfigError(f"scintillation must be a LognormalScintillation or a callable I(t_s), "
                          f"got {type(scintillation).__name__}")
    fade = np.asarray(scintillation(t_s), dtype=np.float64)
    if fade.shape != t_s.shape or not np.all(np.isfinite(fade)) or np.any(fade < 0):
        raise ConfigError(f"scintillation callable must return finite values >= 0 of shape {t_s.shape}, "
                          f"got shape {fade.shape}")
    return fade


def scppm_apd_transmit(frames, link: SCPPMAPDLink, rng, lead_slots: int = 0, tail_slots: int = 64,
                       scintillation=None) -> np.ndarray:
    """TM frames (bytes of ``link.spec``) -> ASM stream -> k-bit blocks -> SCPPM -> APD ADC samples.

    ``lead_slots`` / ``tail_slots`` dark slots before / after the codewords. ``scintillation``:
    None, a :class:`modem.channel.fading.LognormalScintillation` (sampled with ``rng`` at the times
    of the pulsed slots) or a callable ``I(t_s)`` (intensity factor at slot times in seconds,
    slot 0 at t = 0): the signal photoelectrons of each pulse are scaled by ``I``, the background
    is not. Returns float64 ``(n_samples,)`` (:func:`modem.channel.apd.apd_samples` with
    ``link.clock``). The last block is zero-filled; with a channel interleaver its contents are
    flushed too.
    """
    code = link.code
    u = tm_blocks(frames, link.spec, code.k)
    tx = SCPPMTransmitter(code)
    pulses = tx.modulate(u).reshape(-1)
    if code.interleaver_rows > 1:
        pulses = np.concatenate([pulses, tx.flush().reshape(-1)])
    pulses = np.concatenate([np.zeros(int(lead_slots), np.uint8), pulses, np.zeros(int(tail_slots), np.uint8)])
    if scintillation is None:
        return apd_samples(pulses, link.ns, link.nb, link.apd, link.clock, rng)
    from .channel.apd import shape_and_sample  # noqa: PLC0415
    mean = link.ns * pulses.astype(np.float64)
    on = np.flatnonzero(pulses)
    mean[on] *= _intensity(scintillation, on / float(link.slot_rate_hz), rng)
    n = rng.poisson(mean + link.nb)
    return shape_and_sample(link.apd.multiply(n, rng), link.clock, rng, link.apd.thermal_sigma)


@dataclass
class CodewordSlots:
    """Codewords found by :class:`SlotCSMSync`: ``llr`` (F, slots_per_codeword) float64 slot LLRs,
    ``t`` (F,) sample position of each first slot, ``slot`` (F,) its front-end slot number,
    ``csm_llr`` (F,), ``locked`` (F,) bool (False: emitted by the flywheel), ``segment`` (F,) lock
    number, ``seq`` (F,) codeword number within the lock (contiguous within a segment);
    ``events``: ``(kind, t, info)`` in order, kind ``"acquired"`` (t: first slot of the codeword the
    lock starts on), ``"lost"`` (t: expected first slot of the first of the missed CSMs that ended
    the lock), ``"slip"`` (t: the re-timed codeword, info ``{"slots": +-1}``); t in input samples."""

    llr: np.ndarray
    t: np.ndarray
    slot: np.ndarray
    csm_llr: np.ndarray
    locked: np.ndarray
    segment: np.ndarray
    seq: np.ndarray
    events: list = field(default_factory=list)

    def __len__(self):
        return int(self.slot.shape[0])


@dataclass
class SlotCSMSyncState:
    """Memory of :class:`SlotCSMSync`: buffered slot LLRs ``llr`` / positions ``t`` from slot
    number ``base``; ``pos`` the buffer index of the next expected codeword (LOCK) or search start; ``mode`` 0 SEARCH / 1 LOCK; ``misses``; ``segment`` (locks so far), ``seq``.
    Counters: codewords, flywheeled, locks, lock_losses, slips (re-timings in LOCK), relocks
    (re-alignments by more than a slot after missed CSMs, reported as a loss and an acquisition)."""

    llr: np.ndarray = field(default_factory=lambda: np.zeros(0))
    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    base: int = 0
    pos: int = 0
    mode: int = 0
    misses: int = 0
    miss_t: float = float("nan")
    lock_slot: int = 0
    fresh: bool = False
    segment: int = -1
    seq: int = 0
    codewords: int = 0
    flywheeled: int = 0
    locks: int = 0
    lock_losses: int = 0
    slips: int = 0
    relocks: int = 0


class SlotCSMSync:
    """Codeword synchronisation of SCPPM on *slot* log-likelihood ratios, at slot resolution.

    The CSM score is :func:`modem.sync.codeword_sync.csm_llr` with ``w = 1`` applied to slot LLRs
    ``lambda_s = ln p(z_s | pulse) - ln p(z_s | empty)``: ``Lambda(j) = sum_i [lambda_{c_i} - ln sum_m
    exp(lambda_m) + ln M]`` over the CSM symbols of a codeword starting at slot ``j`` (Poisson counts
    are the special case ``lambda = w y - ns``; the constant cancels). The front end's slot numbering
    has no symbol phase, so SEARCH scores every *slot* offset of one codeword period (``P`` phases of
    the symbol-level score); the best one is accepted at ``Lambda >= search_threshold`` (default
    ``ln(slots_per_codeword) + 8``), else the next period's scores are added (joint LLR of two
    CSMs) and the same threshold applied, else one period is dropped. LOCK scores the CSM at the
    expected slot and +-1 slot (the timing loop may slip a slot; ties keep the expected slot), a hit is
    ``Lambda > lock_threshold`` (default 0). Failing that, every slot within +-P of the expected one
    is scored, and the best is a hit if it reaches the search threshold: the timing loop coasting
    through a gap of no signal slips a few slots (2 over 1.5 codewords of 16-PPM), and the first
    codeword after the gap used to be emitted misaligned and lost. Such a re-alignment after missed
    CSMs is reported as ``lost`` (at the first miss) and ``acquired`` (``relock``), without one a
    ``slip``. Up to ``flywheel`` consecutive misses are still emitted (``locked`` False), one more
    returns to SEARCH. Decisions depend only on the slots of their window, so any chunking gives
    identical output.

    ``push(llr, t, state) -> (CodewordSlots, state)``: llr, t 1-D float64 of consecutive slots.
    """

    def __init__(self, code: SCPPMCode, search_threshold: float | None = None, lock_threshold: float = 0.0,
                 flywheel: int = 2):
        if not isinstance(code, SCPPMCode):
            raise ConfigError(f"SlotCSMSync: code must be an SCPPMCode, got {type(code).__name__}")
        if code.L_csm == 0:
            raise ConfigError("SlotCSMSync: the code has no CSM (csm=False); codeword sync needs it")
        if code.repetition > 1 and code.repeat_unit != "symbol":
            raise ConfigError(f"SlotCSMSync: repeat_unit={code.repeat_unit!r} with repetition={code.repetition} "
                              "is ambiguous for the CSM; only 'symbol' is supported")
        if isinstance(flywheel, bool) or not isinstance(flywheel, (int, np.integer)) or not 0 <= flywheel <= 1 << 20:
            raise ConfigError(f"SlotCSMSync: flywheel must be an integer >= 0, got flywheel={flywheel!r}")
        self.code = code
        self.P = code.slots_per_symbol
        self.spc = code.slots_per_codeword
        self.pat = np.repeat(code.csm_symbols, code.repetition)
        self.Lq = self.pat.size
        self.per = code.symbols_per_codeword * code.repetition
        top = self.Lq * math.log(code.M)
        st = min(math.log(self.spc) + 8.0, 0.75 * top) if search_threshold is None else float(search_threshold)
        if not -1e9 < st < top or not -1e9 < float(lock_threshold) < top:
            raise ConfigError(f"SlotCSMSync: thresholds must be below L*ln M = {top:.2f}, got "
                              f"search_threshold={search_threshold!r}, lock_threshold={lock_threshold!r}")
        self.search_min, self.lock_min, self.flywheel = st, float(lock_threshold), int(flywheel)
        self.need = self.spc + self.Lq * self.P - 1         # slots scored by one SEARCH period
        self._phases = np.arange(self.P, dtype=np.int64)

    def initial_state(self) -> SlotCSMSyncState:
        return SlotCSMSyncState()

    def scores(self, x: np.ndarray) -> np.ndarray:
        """``Lambda(j)`` for slot offsets ``j = 0 .. spc-1`` of ``x`` (len >= need): the symbol-level
        score at each of the ``P`` slot phases, compiled (:func:`csm_llr_slot_offsets`, equal to
        :func:`csm_llr` per phase to rounding; 128-PPM: ~57 ms per period, ~790 ms phase by phase)."""
        lam = csm_llr_slot_offsets(np.ascontiguousarray(x, dtype=np.float64), self.P, self.code.M, 1.0, self.pat,
                                   self._phases, self.per)
        return lam.T.reshape(-1)

    def score_at(self, x: np.ndarray, j: int) -> float:
        return float(csm_llr(x[j:j + self.Lq * self.P].reshape(self.Lq, self.P), self.pat, self.code.M, 1.0)[0])

    def push(self, llr, t, state: SlotCSMSyncState) -> tuple[CodewordSlots, SlotCSMSyncState]:
        llr = np.asarray(llr, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        if llr.ndim != 1 or t.shape != llr.shape:
            raise ShapeError(f"SlotCSMSync.push: llr and t must be 1-D of one length, got {llr.shape} and {t.shape}")
        st = dataclasses.replace(state)
        buf = np.concatenate([st.llr, llr])
        tb = np.concatenate([st.t, t])
        spc = self.spc
        out = {k: [] for k in ("llr", "t", "slot", "csm", "locked", "segment", "seq")}
        events = []
        pos = st.pos
        while True:
            avail = buf.size - pos
            if st.mode == 0:
                if avail < self.need:
                    break
                lam = self.scores(buf[pos:pos + self.need])
                j = int(np.argmax(lam))
                if lam[j] < self.search_min:
                    if avail < self.need + spc:
                        break
                    lam = lam + self.scores(buf[pos + spc:pos + spc + self.need])
                    j = int(np.argmax(lam))
                if lam[j] >= self.search_min:
                    pos += j
                    st.lock_slot = st.base + pos
                    events.append(("acquired", float(tb[pos]), {"csm_llr": float(lam[j])}))
                    st.mode, st.misses, st.fresh = 1, 0, True
                    st.locks += 1
                    st.segment += 1
                    st.seq = 0
                else:
                    pos += spc
                continue
            # LOCK: CSM at the expected slot (and +-1 slot unless just acquired)
            if avail < spc + 1:
                break
            cands = [0] if st.fresh else ([0, 1] if pos == 0 else [0, -1, 1])
            sc = [self.score_at(buf, pos + d) for d in cands]
            b = max(range(len(cands)), key=lambda i: (sc[i], -i))
            d, lam0 = cands[b], sc[b]
            hit = lam0 > self.lock_min
            if not hit and not st.fresh:
                # the slots moved by more than one (the timing loop coasting through a gap slips a
                # few): the CSM within +-P slots, on the search threshold (strong evidence only),
                # never before the lock's first slot (present in every chunking)
                lo = max(-self.P, st.lock_slot - st.base - pos)
                wide = [w for w in range(lo, self.P + 1) if w not in cands]
                sw = [self.score_at(buf, pos + w) for w in wide]
                if sw:
                    i = max(range(len(wide)), key=lambda i: (sw[i], -abs(wide[i]), -wide[i]))
                    if sw[i] >= self.search_min:
                        d, lam0, hit = wide[i], sw[i], True
            st.fresh = False
            if not hit:
                if st.misses == 0:
                    st.miss_t = float(tb[pos])
                st.misses += 1
                if st.misses > self.flywheel:
                    events.append(("lost", st.miss_t, {"missed_csm": st.misses}))
                    st.mode, st.misses = 0, 0
                    st.lock_losses += 1
                    continue
                st.flywheeled += 1
                d, lam0 = 0, sc[0]
            elif st.misses and abs(d) > 1:          # re-aligned after missed CSMs: sync was lost there
                events.append(("lost", st.miss_t, {"missed_csm": st.misses}))
                events.append(("acquired", float(tb[pos + d]), {"csm_llr": float(lam0), "slots": int(d),
                                                                "relock": True}))
                st.misses = 0
                st.relocks += 1
            else:
                st.misses = 0
                if d != 0:
                    st.slips += 1
                    events.append(("slip", float(tb[pos + d]), {"slots": int(d)}))
            p = pos + d
            out["llr"].append(buf[p:p + spc])
            out["t"].append(tb[p])
            out["slot"].append(st.base + p)
            out["csm"].append(lam0)
            out["locked"].append(hit)
            out["segment"].append(st.segment)
            out["seq"].append(st.seq)
            st.seq += 1
            st.codewords += 1
            pos = p + spc
        # LOCK keeps P slots before the next CSM (the +-P re-alignment), none before the lock
        keep = min(max(pos - self.P, st.lock_slot - st.base, 0) if st.mode == 1 else pos, buf.size)
        st.llr, st.t = buf[keep:].copy(), tb[keep:].copy()
        st.base += keep
        st.pos = pos - keep
        F = len(out["slot"])
        blocks = CodewordSlots(
            llr=np.stack(out["llr"]) if F else np.zeros((0, spc)), t=np.array(out["t"], np.float64),
            slot=np.array(out["slot"], np.int64), csm_llr=np.array(out["csm"], np.float64),
            locked=np.array(out["locked"], bool), segment=np.array(out["segment"], np.int64),
            seq=np.array(out["seq"], np.int64), events=events)
        return blocks, st


def _check_samples(y, who: str) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1:
        raise ShapeError(f"{who}: samples must be 1-D (n,), got shape {a.shape}")
    if a.dtype.kind not in "iuf":
        raise ShapeError(f"{who}: samples must be real int or float, got dtype {a.dtype}")
    return a


class SCPPMSampleReceiver:
    """APD ADC samples -> checked TM transfer frames (see the module docstring).

    Parameters
    ----------
    link : :class:`SCPPMAPDLink` (or use :meth:`from_dict`).
    sync_options : extra keyword arguments of :class:`SlotCSMSync` (search_threshold,
        lock_threshold, flywheel).   frontend_options : extra :class:`FrontEndConfig` fields.
    deframer_options : extra :class:`FrameSyncConfig` fields of the TM-frame synchroniser.
    slot_llr : ``"mixture"`` (:class:`APDSlotLLR`, default) or ``"gaussian"`` (single Gaussian,
        :func:`gaussian_slot_llr`).
    launcher : where the SCPPM decoder runs: None (default) the CPU, a kernel launcher
        (:func:`modem.backend.fec_launcher` for the GPU) the CUDA kernels (same decisions).
    decode_batch : codewords held back before each decoder call (:class:`~modem.receiver.CodewordHold`);
        None (default) :func:`modem.backend.default_decode_batch` (1 on the CPU; on a kernel
        launcher 1024, or fewer where they would hold over 256 MB). Same frames at any value; held
        codewords' frames come out later, or at ``flush``.

    ``push(samples)`` -> list of :class:`ReceivedFrame` completed by the chunk (1-D real int/float
    samples; empty chunks are fine; NaN/inf, other dtypes or shapes raise ShapeError and leave the
    receiver unchanged). ``flush()`` at the end of a record; ``stats`` (:class:`ReceiverStats`);
    ``reset()``.
    """

    def __init__(self, link: SCPPMAPDLink, sync_options: dict | None = None, frontend_options: dict | None = None,
                 deframer_options: dict | None = None, slot_llr: str = "mixture", launcher=None,
                 decode_batch: int | None = None):
        if not isinstance(link, SCPPMAPDLink):
            raise ConfigError(f"SCPPMSampleReceiver: link must be an SCPPMAPDLink, got {type(link).__name__}")
        self.link, self.code, self.spec = link, link.code, link.spec
        # signal gate: halfway between the mean MF output of background only and with the signal
        P = self.code.slots_per_symbol
        gate = link._frontend_config().gate_gain() * link.apd_gain * (link.nb + 0.5 * link.ns / P)
        # no feed-forward phase acquisition here: it would trigger when the slow PPM signal gate
        # opens (~1000 slots in), i.e. usually inside the first CSM, which then fails to lock
        self.frontend = SampleFrontEnd(link._frontend_config(**{"signal_threshold": gate,
                                                                **(frontend_options or {})}))
        noise_var = (link.thermal_sigma ** 2 + link.adc_noise_var) * self.frontend.noise_gain
        if slot_llr not in ("mixture", "gaussian"):
            raise ConfigError(f"SCPPMSampleReceiver: slot_llr must be 'mixture' or 'gaussian', got {slot_llr!r}")
        self.moments = apd_slot_moments(link.apd, link.ns, link.nb, noise_var=noise_var)
        if slot_llr == "gaussian" and not (self.moments["var0"] > 0):
            raise ConfigError("SCPPMSampleReceiver: an empty slot has zero variance (nb = 0 and no thermal or ADC "
                              "noise); give nb > 0 or thermal_sigma > 0, or use slot_llr='mixture'")
        self.slot_llr = (APDSlotLLR(link.apd, link.ns, link.nb, noise_var) if slot_llr == "mixture"
                         else (lambda z: gaussian_slot_llr(z, self.moments)))
        self.sync = SlotCSMSync(self.code, **(sync_options or {}))
        self.launcher = launcher
        self.decoder = SCPPMDecoder(self.code, max_iter=link.max_iter, launcher=launcher)
        c = self.code                     # a held codeword: its (S, M) float64 symbol metrics
        self._hold = CodewordHold(default_decode_batch(launcher, 8 * c.S * c.M)
                                  if decode_batch is None else decode_batch)
        self.deframer_options = dict(deframer_options or {})
        self.reset()

    @property
    def decode_batch(self) -> int:
        return self._hold.decode_batch

    @classmethod
    def from_dict(cls, d: dict, strict: bool = True, **options) -> "SCPPMSampleReceiver":
        """Receiver from a plain dict of :class:`SCPPMAPDLink` keys (see its docstring)."""
        return cls(SCPPMAPDLink.from_dict(d, strict=strict), **options)

    def reset(self):
        self.stats = ReceiverStats()
        self._fe_state = self.frontend.initial_state()
        self._sync_state = self.sync.initial_state()
        self._deframer = TMDeframer(self.spec, self.code.k, self.stats, 1e12 / self.link.sample_rate_hz,
                                    sample_times=True, options=self.deframer_options)
        self._key = None
        self._n_cw = 0
        self._deint = CodewordDeinterleaver(self.code)
        self._hold.clear()

    @property
    def sync_state(self) -> SlotCSMSyncState:
        return self._sync_state

    def _event(self, kind: str, t_sample: float, info: dict):
        _record_event(self.stats, kind, t_sample / self.link.sample_rate_hz * 1e12, info)

    def push(self, samples) -> list[ReceivedFrame]:
        y = _check_samples(samples, "SCPPMSampleReceiver.push")
        s, fe_state = self.frontend.push(y, self._fe_state)     # validates (finite) before any change
        self._fe_state = fe_state
        self.stats.samples += int(y.size)
        lam = np.clip(self.slot_llr(s.z), -SLOT_LLR_CLIP, SLOT_LLR_CLIP)
        cw, self._sync_state = self.sync.push(lam, s.t, self._sync_state)
        for kind, t, info in cw.events:
            self._event({"lost": "loss_of_signal"}.get(kind, kind), t, info)
        return self._decode(cw)

    def flush(self) -> list[ReceivedFrame]:
        """End of record: the front end reads the slots it still held back (:meth:`SampleFrontEnd.drain`)
        and one erased slot (LLR 0) past the record end lets codeword sync (which scores the CSM at
        +-1 slot) take a codeword that ends with the record; a partial codeword is dropped. The TM
        synchroniser closes a frame that ends exactly at the end of the last codeword. ``reset()``
        before pushing another record."""
        s, self._fe_state = self.frontend.drain(self._fe_state)
        _, self._fe_state = self.frontend.flush(self._fe_state)
        lam = np.concatenate([np.clip(self.slot_llr(s.z), -SLOT_LLR_CLIP, SLOT_LLR_CLIP), [0.0]])
        cw, self._sync_state = self.sync.push(lam, np.concatenate([s.t, [np.nan]]), self._sync_state)
        for kind, t, info in cw.events:
            self._event({"lost": "loss_of_signal"}.get(kind, kind), t, info)
        frames = self._decode(cw, final=True)
        return frames + self._deframer.flush()

    def _decode(self, cw: CodewordSlots, final: bool = False) -> list[ReceivedFrame]:
        """Symbol metrics -> [held until ``decode_batch``] -> [convolutional de-interleaver] ->
        decoder -> TM deframer. A hole in the codeword stream (new lock) restarts the TM frame sync
        and the de-interleaver (which then refills: its first ``delay`` symbols are fill, and the
        codewords spread over the hole are lost)."""
        restart = np.zeros(len(cw), bool)
        for i in range(len(cw)):
            key = (int(cw.segment[i]), int(cw.seq[i]))
            restart[i] = self._key is not None and key != (self._key[0], self._key[1] + 1)
            self._key = key
        if len(cw):
            self._hold.add(ppm_symbol_metric(cw.llr, self.code), restart, np.asarray(cw.t),
                           np.asarray(cw.csm_llr), np.asarray(cw.locked))
        held = self._hold.take(final)
        if held is None:
            return []
        metric, restart, t, csm_llr, locked = held
        metric, src = self._deint.push(metric, restart)
        res = self.decoder.decode(metric, check=False)
        frames, self._n_cw = deliver_codewords(
            self._deframer, self.stats, self._n_cw, res, src, restart, t,
            lambda i, ok, n_it: (ok, n_it, float(csm_llr[i]), bool(locked[i])))
        return frames


# =================================================================================================
# DPSK (DVB-S2 LDPC + BCH) over a pre-amplified balanced receiver


@dataclass(frozen=True)
class DPSKLink(_LinkBase):
    """DPSK + DVB-S2 link parameters: the dict-key schema of :class:`DPSKSampleReceiver`.

    Keys (``to_dict()`` adds ``"chain": "dpsk"``; SigMF metadata may prefix them ``modem:``)
    -------------------------------------------------------------------------------------
    frame, rate : DVB-S2 FECFRAME ("normal"/"short") and code rate ("1/2", ...).
    frame_len, scid, vcid, ocf, fecf : TM transfer frames (:class:`TMFrameSpec`).
    divider, burst_bits, slot_rate_hz : :class:`modem.modulation.dpsk.BurstFormat` (duty = 1/divider;
        bursts of burst_bits slots every divider*burst_bits slots; slot_rate_hz the slot clock).
    ppb, nf_db, modes : :class:`PreampDLIReceiver` (photons per DPSK bit, noise figure, modes).
    thermal_sigma : rms thermal noise per sample (photon units of the balanced output).
    sps, pulse_sigma, adc_bits, full_scale : sampling, as for SCPPM.
    ppm, phase : simulation only.
    interleaver_ms : channel interleaver depth in ms (block interleaver of
        D = ceil(ms * data_rate / (n + 32)) FEC frames; 0 = none).
    loop_bw : timing loop bandwidth B_L T; None (default): 0.01, or 0.004 in burst mode with bursts of
        1024 bits or more (:attr:`timing_loop_bw`).  burst_threshold : |z| threshold of the burst detector that
        gates the timing loop in burst mode (None: E_b/4 or 3 noise rms,
        whichever is larger; unused at duty 1).
    max_iter : LDPC iteration cap.  llr_scale : factor on the Gaussian-moment LLR.
    power_bits : time constant, in received bits, of the running estimate of the received energy
        per bit that the LLR uses (see :class:`DPSKSampleReceiver`); 0 = the nominal ``ppb``.
    """

    chain: ClassVar[str] = "dpsk"

    frame: str = "short"
    rate: str = "1/2"
    frame_len: int = 1115
    scid: int = 0
    vcid: int = 0
    ocf: bool = False
    fecf: bool = True
    divider: int = 1
    burst_bits: int = 4096
    slot_rate_hz: float = _dpsk.SLOT_RATE
    ppb: float = 8.0
    nf_db: float = NF_IDEAL_DB
    modes: int = 1
    thermal_sigma: float = 0.0
    sps: float = 4.0
    pulse_sigma: float = 0.25
    adc_bits: int | None = None
    full_scale: float = 1.0
    ppm: float = 0.0
    phase: float = 0.0
    interleaver_ms: float = 0.0
    loop_bw: float | None = None
    burst_threshold: float | None = None
    max_iter: int = 50
    llr_scale: float = 1.0
    power_bits: int = 512

    def __post_init__(self):
        who = "DPSKLink"
        self.code  # noqa: B018
        self.burst_format  # noqa: B018
        self.receiver_model  # noqa: B018
        self.interleaver  # noqa: B018
        v = self.thermal_sigma
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not (math.isfinite(float(v)) and float(v) >= 0):
            raise ConfigError(f"{who}: thermal_sigma must be a finite number >= 0, got thermal_sigma={v!r}")
        v = self.llr_scale
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not (math.isfinite(float(v)) and float(v) > 0):
            raise ConfigError(f"{who}: llr_scale must be a finite number > 0, got llr_scale={v!r}")
        v = self.power_bits
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= 10_000_000:
            raise ConfigError(f"{who}: power_bits must be an integer in 0..10000000, got power_bits={v!r}")
        self._check_common()
        self._frontend_config(**self._burst_options())

    @property
    def timing_loop_bw(self) -> float:
        """``loop_bw``, or by default 0.01 (continuous, or bursts shorter than 1024 bits) / 0.004.

        The loop runs only inside bursts and its frequency integrator freewheels across the gaps:
        a frequency error ``df`` (fraction) moves the next burst by ``df * (divider - 1) *
        burst_bits`` slots. Measured at 6 photons/bit, -150 ppm, 20 TM frames: at B_L T = 0.01 the
        integrator ends a burst up to ~100-250 ppm off, enough for a slot or more across the gap of
        long bursts (divider 2 / 4096-bit bursts: 8/20 frames; divider 4 / 4096: 0/20; divider 8 /
        1024: 0/20), while 0.004 keeps the in-burst timing error at 0.01-0.03 slot rms (20/20 each).
        Short bursts need the wider loop to learn the clock offset at all (divider 8 / 256-bit
        bursts: 0.05 slot rms at 0.01, 0.19 at 0.004).

        Gaps longer than ``BURST_PERIODIC_GAP`` (4096) slots (divider 40 with 256-bit bursts: 9984
        dark slots; the loop alone decoded 0/20 frames there at any offset) run the front end in
        burst-periodic mode (:class:`modem.sync.samples.FrontEndConfig` ``burst_period``):
        re-acquisition before every burst, clock rate from the burst period, a proportional-only
        loop inside bursts; so do bursts shorter than 1024 bits (:attr:`burst_periodic`), whose
        in-burst loop slipped slots across the gaps at 2-2.5 photons/bit."""
        if self.loop_bw is not None:
            return self.loop_bw
        return 0.004 if self.divider > 1 and self.burst_bits >= 1024 else 0.01

    @property
    def burst_periodic(self) -> bool:
        """Whether the front end runs in burst-periodic mode (:class:`modem.sync.samples.FrontEndConfig`
        ``burst_period``): in burst mode with gaps over ``BURST_PERIODIC_GAP`` (4096) slots, or with
        bursts shorter than ``BURST_PERIODIC_BITS`` (1024) bits (of at least 24, the shortest burst
        that mode can acquire over: ``acquire_slots`` = burst_bits - 8 >= 16).

        Short bursts: the in-burst loop's frequency integrator learns from ~255 noisy timing errors per
        burst and freewheels across the gap. At 6 photons/bit that carried 256-bit bursts (divider
        4, 768 dark slots) with a timing error of 0.01 slot rms at mid-burst and no slot slip, but at
        2 photons/bit the integrator ended bursts hundreds of ppm off (up to ~1400 ppm at 0 ppm
        offset), the next burst started 0.1 slot rms off and the slot count slipped at 85-145 of
        1014 bursts (three records); the burst grid, which follows a slip only after several
        windows, then read whole bursts 1-4 slots off and no FEC frame synchronised (0/12 TM frames
        at 2 photons/bit, 7-10/12 at 2.5, divider 8: 0/12 at 2 and 2.5 photons/bit). The
        burst-periodic mode measures the clock from burst to burst instead (11-12/12 there, see
        tests/test_burst_sensitivity.py). Bursts of 1024 bits or more (with the 0.004 loop) are
        carried by the in-burst loop, better than by the burst-periodic mode at 2-2.5 photons/bit
        (divider 2 / 4096-bit bursts, -150 ppm: 12/12 vs 0-11/12)."""
        if self.divider == 1 or self.burst_bits < BURST_PERIODIC_MIN_BITS:
            return False
        return (self.divider - 1) * self.burst_bits > BURST_PERIODIC_GAP or self.burst_bits < BURST_PERIODIC_BITS

    @property
    def code(self):
        from .fec import dvbs2  # noqa: PLC0415
        return dvbs2.code(self.frame, self.rate)

    @property
    def burst_format(self) -> _dpsk.BurstFormat:
        return _dpsk.BurstFormat(divider=self.divider, burst_bits=self.burst_bits, slot_rate=self.slot_rate_hz)

    @property
    def receiver_model(self) -> PreampDLIReceiver:
        return PreampDLIReceiver(self.ppb, self.nf_db, self.modes)

    @property
    def interleaver(self) -> ChannelInterleaver:
        n = self.code.n
        return ChannelInterleaver.from_ms(self.interleaver_ms, n, self.burst_format.data_rate,
                                          frame_bits=n + _dpsk.ASM_LEN)

    def _burst_options(self) -> dict:
        """Front-end gating: the z^2 signal gate (both modes) and the burst detector (duty < 1).

        Mean z^2 per slot: with signal ``E_b^2 + v1``, without ``v0`` (``v1 = 2 M s^4 + 2 E_b s^2 +
        x``, ``v0 = 2 M s^4 + x``, s^2 = N0/2, x thermal/ADC after the matched filter: the per-sample
        variance times its white-noise gain ``sum g^2``, 0.97 at sps 2, 0.56 at sps 4; it was taken
        as 1/4, which put the gate below the noise-only level under thermal noise); averaged over 64
        slots (it must open within the first slots of a burst or of the record), the gate opens
        at ``v0 + max(0.15 g (S - v0), 0.75 v0)`` (``S`` the duty-weighted signal level, ``g`` the
        gate gain of the signal term): about 6 standard deviations of the running mean above the
        noise level, and low enough that fades down to an intensity of ~0.3 keep the loop running.
        (Halfway between the two levels, as before, froze the loop in fades of I < 0.7, where the
        clock then drifted off: at 5 photons/bit, SI 0.1, 20 us, 5 of 56 codewords were lost in
        continuous mode whose mean fade left 3-4 photons/bit, which decode without the fade.)
        Feed-forward phase acquisition over 256 slots (or the burst) when the loop first runs;
        burst-periodic mode (``burst_period``, ``burst_length``) where :attr:`burst_periodic`."""
        if self.divider > 1 and self.burst_bits < 9:
            raise ConfigError(f"DPSKLink: burst_bits must be >= 9 in burst mode (the receiver acquires the phase "
                              f"over burst_bits - 8 slots), got burst_bits={self.burst_bits!r} "
                              f"(divider={self.divider!r})")
        rx = self.receiver_model
        noise_gain = float(np.sum(matched_filter_taps(self.sps, self.pulse_sigma) ** 2))
        x = (self.thermal_sigma ** 2 + self.adc_noise_var) * noise_gain
        v0 = 2.0 * rx.modes * rx.sigma2 ** 2 + x
        v1 = v0 + 2.0 * rx.es * rx.sigma2
        duty = 1.0 / self.divider
        with_signal = duty * (rx.es ** 2 + v1) + (1.0 - duty) * v0
        gain = self._frontend_config().gate_gain(square=True)
        thr = v0 + max(0.15 * gain * (with_signal - v0), 0.75 * v0)
        out = {"signal_threshold": thr, "signal_square": True, "signal_slots": 64.0,
               "acquire_slots": 256 if self.divider == 1 else min(256, self.burst_bits - 8)}
        if self.burst_periodic:
            # long gaps, or bursts too short for the loop to learn the clock: re-acquire before
            # every burst and learn the clock rate from the burst period (FrontEndConfig.burst_period)
            out["burst_period"] = self.divider * self.burst_bits
            out["burst_length"] = self.burst_bits
            out["burst_hold"] = BURST_HOLD
        if self.divider > 1:
            out["burst_threshold"] = self.burst_threshold
            if self.burst_threshold is None:
                # a quarter of the nominal |z| = E_b keeps bursts detected in fades down to I ~ 0.35
                # (at E_b / 2, fades to I ~ 0.6 already froze the loop: 2 of 56 codewords lost at
                # 10 photons/bit, SI 0.1, 20 us, none with E_b / 4); at least 3 noise rms, so that
                # noise between bursts rarely opens one (4 hot slots in a row)
                out["burst_threshold"] = max(0.25 * rx.es, 3.0 * math.sqrt(v0))
        return out


#: dark slots between bursts from which :class:`DPSKLink` runs the front end in burst-periodic mode
#: (divider 40 / 256-bit bursts: 9984; the in-burst loop alone carries divider 8 / 1024 bits: 7168)
BURST_PERIODIC_GAP = 4096
#: ... and bursts shorter than this many bits (the in-burst loop cannot learn the clock from them
#: at low photon numbers; see :attr:`DPSKLink.burst_periodic`), down to BURST_PERIODIC_MIN_BITS
BURST_PERIODIC_BITS = 1024
BURST_PERIODIC_MIN_BITS = 24
#: bursts the burst-periodic front end holds at every acquisition of its burst grid before handing
#: their slots on, read again on the grid fitted to all of them (FrontEndConfig.burst_hold)
BURST_HOLD = 32


def dpsk_transmit_frames(frames, link: DPSKLink, rng, lead_slots: int = 0, tail_slots: int = 64,
                         return_bits: bool = False, scintillation=None):
    """TM frames -> ASM stream -> k-bit blocks -> DVB-S2 (BCH + LDPC) -> pn8 -> [interleaver] -> ASM +
    codeword per FEC frame -> differential encoding -> burst format -> balanced-detector samples.

    Returns float64 samples ``(n_samples,)`` (:func:`dpsk_balanced_samples` with ``link.clock``), and
    the wire bits ``(n_fec_frames, 32 + n)`` too when ``return_bits``. ``scintillation``: None, a
    :class:`modem.channel.fading.LognormalScintillation` (sampled with ``rng`` at the times of the
    occupied slots) or a callable ``I(t_s)`` (intensity factor at slot times in seconds, slot 0 at
    t = 0): the optical field of each slot is multiplied by ``sqrt(I)`` before the pre-amplified
    receiver (signal power fades, amplifier noise does not). With an interleaver of depth D
    the number of FEC frames is padded with zero blocks to a multiple of D; in burst mode the last
    burst is filled with zero bits.
    """
    code = link.code
    u = tm_blocks(frames, link.spec, code.k)
    il = link.interleaver
    D = il.depth
    if u.shape[0] % D:
        u = np.concatenate([u, np.zeros((D - u.shape[0] % D, code.k), np.uint8)])
    c = code.encode(u) ^ pn8(code.n)
    if D > 1:
        c = il.interleave(c.reshape(-1, D * code.n)).reshape(-1, code.n)
    wire = _dpsk.attach_asm(c)
    fmt = link.burst_format
    bits = wire.reshape(-1)
    if not fmt.continuous and bits.size % fmt.burst_bits:      # the last burst is filled with zeros
        bits = np.concatenate([bits, np.zeros(fmt.burst_bits - bits.size % fmt.burst_bits, np.uint8)])
    x, _ = _dpsk.differential_encode(bits)
    slots = fmt.slot_index(np.arange(x.size)) + int(lead_slots)
    field_ = np.zeros(int(slots[-1]) + 1 + int(tail_slots) if x.size else int(lead_slots) + int(tail_slots),
                      np.complex128)
    field_[slots] = _dpsk.dpsk_field(x)
    if scintillation is not None:
        field_[slots] *= np.sqrt(_intensity(scintillation, slots / float(link.slot_rate_hz), rng))
    y = dpsk_balanced_samples(field_, link.receiver_model, link.clock, rng, thermal_sigma=link.thermal_sigma)
    return (y, wire) if return_bits else y


@dataclass
class BurstGridState:
    """Memory of :class:`BurstGrid`: buffered slots ``z``/``t`` from slot number ``base``; ``acc``
    (period,) leaky folded energy; ``windows`` folded; ``queue`` burst starts decided, not yet emitted;
    ``last`` the last decided burst start (None before acquisition); ``moves`` grid moves; ``done``
    the slot after the last burst emitted; ``t_last`` the sample position of the last emitted
    burst's first slot (NaN before the first)."""

    z: np.ndarray = field(default_factory=lambda: np.zeros(0))
    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ph: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    base: int = 0
    acc: np.ndarray | None = None
    windows: int = 0
    queue: tuple = ()
    last: int | None = None
    moves: int = 0
    done: int = 0
    t_last: float = math.nan


class BurstGrid:
    """Burst positions of burst-mode DPSK from the slot energy folded over the burst period.

    Front-end slots are numbered from the first recovered slot; the burst period is
    ``Pb = divider * burst_bits`` slots. Every whole window ``[w Pb, (w+1) Pb)`` of slot numbers is
    folded into ``acc = decay * acc + z^2``; from ``acquire`` windows on (their bursts are emitted
    then, so waiting costs latency, not data), the phase ``phi`` that
    maximises the circular sum of ``acc`` over ``burst_bits - 1`` slots (the referenced bits), minus
    one, gives the next burst start (the current phase is kept unless the best beats it by
    ``hysteresis`` slots' worth of energy), provided the run's mean energy is ``contrast`` times the
    mean outside it (otherwise no signal: the grid freewheels at the previous start + Pb, and does
    not acquire)
    (the candidate ``w Pb + phi + m Pb`` nearest to the previous start + Pb; at acquisition the
    buffered windows' bursts too). Each burst's ``burst_bits`` slots are emitted in order, the first
    flagged ``erase`` (no phase reference). Chunk-size invariant (decisions at whole windows).

    ``push(z, t, state, phases=None) -> (z_bits, t_bits, erase, breaks, state)``; with ``phases``
    the burst starts come from the caller (the receiver passes the burst-periodic front end's grid,
    per slot: :attr:`SlotStatistics.grid_start`), the fold only says whether there is signal.

    ``breaks`` (int64, ascending): indices into ``z_bits`` of the first bit of each burst that is
    not the one after the burst emitted before it: its first slot lies more than half a burst
    (``burst_bits / 2`` slots, at the slot period read inside the burst) from one burst period
    after the previous burst's. The grid moved to other bursts (a re-acquisition: a second record,
    a transmitter restarting its schedule), bursts were lost upstream, or bursts read once are read
    again (a burst hold after a re-acquisition): the FEC-frame phase of the bits after it has
    nothing to do with that of the bits before, so a FEC-frame lock must not go on across it
    (:meth:`ASMFrameSync.push` ``breaks``). A smaller move (the grid following its bursts by a few
    slots, a fold correction) keeps the bursts one to one, and the FEC-frame phase with them.
    """

    def __init__(self, fmt: _dpsk.BurstFormat, acquire: int = 6, decay: float = 0.9, contrast: float = 4.0,
                 hysteresis: float = 0.5):
        self.L = int(fmt.burst_bits)
        self.Pb = int(fmt.burst_bits) * int(fmt.divider)
        self.acquire, self.decay, self.contrast = int(acquire), float(decay), float(contrast)
        self.hysteresis = float(hysteresis)

    def initial_state(self) -> BurstGridState:
        return BurstGridState(acc=np.zeros(self.Pb))

    def _phase(self, acc, current: int | None) -> int | None:
        """Burst start: the energetic run is slots 1 .. L-1 of a burst (slot 0 has a dark
        reference, so its balanced output carries little signal energy; neither does the slot after).
        None when the best run's mean energy is not ``contrast`` times the mean outside it (no
        signal). A phase ``current`` is kept unless the best run beats it by ``hysteresis`` times
        the mean energy of one slot in the run (one slot of shift moves about one slot's energy)."""
        n = self.L - 1
        ext = np.concatenate([acc, acc[:n]])
        c = np.concatenate([[0.0], np.cumsum(ext)])
        win = c[n:n + self.Pb] - c[:self.Pb]
        j = int(np.argmax(win))
        inside = win[j] / n
        outside = (c[self.Pb] - win[j]) / (self.Pb - n)
        if not inside > self.contrast * outside:
            return None
        if current is not None and win[(current + 1) % self.Pb] >= win[j] - self.hysteresis * inside:
            return current
        return (j - 1) % self.Pb

    def push(self, z, t, state: BurstGridState, phases=None):
        """``phases``: None (the fold places the bursts), or (len(z),) int64, the caller's burst
        start at each slot (-1: none; the burst-periodic front end's grid,
        :attr:`SlotStatistics.grid_start`): window ``w`` then queues the caller's starts in force at
        its last slot, so a grid that moves within a push moves at the right window, whatever the
        chunking; the fold still decides whether there is signal (contrast)."""
        st = dataclasses.replace(state, acc=state.acc.copy())
        zb = np.concatenate([st.z, np.asarray(z, np.float64)])
        tb = np.concatenate([st.t, np.asarray(t, np.float64)])
        if phases is not None:
            if np.shape(phases) != np.shape(z):
                raise ShapeError(f"BurstGrid.push: phases must have the shape of z {np.shape(z)}, got "
                                 f"{np.shape(phases)}")
            pb = np.concatenate([st.ph, np.asarray(phases, np.int64)])
        end = st.base + zb.size
        L, Pb = self.L, self.Pb
        queue = list(st.queue)
        oz, ot, oe, ob = [], [], [], []
        n_out = 0
        while True:
            progressed = False
            w = st.windows
            if end >= (w + 1) * Pb:
                seg = zb[w * Pb - st.base:(w + 1) * Pb - st.base]
                st.acc = self.decay * st.acc + seg * seg
                st.windows += 1
                progressed = True
                if st.windows >= self.acquire and phases is not None:
                    # the caller's burst starts are absolute slot numbers: every start of its grid
                    # up to the one in force at the window's last slot that is not yet queued and
                    # does not overlap the last burst queued (a grid that moved back by less than a
                    # burst loses the overlapped one); no signal or no grid: freewheel
                    g = int(pb[(w + 1) * Pb - 1 - st.base])
                    if self._phase(st.acc, None) is not None and g >= 0:
                        lo = st.base if st.last is None else st.last + L
                        if st.last is not None and (g - st.last) % Pb != 0:
                            # the grid moved: the front end reads the new grid from slot f on (after
                            # the last slot read on the old one; a re-acquisition or a burst hold
                            # reads its bursts again from before the window): queued bursts that
                            # reach past f are dropped (they would mix slots read before and after)
                            pw = pb[:(w + 1) * Pb - st.base]    # (up to the window's last slot)
                            on = (pw >= 0) & ((pw - g) % Pb == 0)
                            old = np.flatnonzero((pw >= 0) & ((pw - st.last) % Pb == 0))
                            after = np.flatnonzero(on[old[-1] + 1:] if old.size else on)
                            f = st.base + (int(old[-1]) + 1 if old.size else 0) + (int(after[0]) if after.size else 0)
                            queue = [b for b in queue if b + L <= f]
                            lo = max(queue[-1] + L if queue else st.done, f)
                        new = [g - q * Pb for q in range((g - lo) // Pb + 1)] if g >= lo else []
                        st.moves += int(st.last is not None and bool(new) and (g - st.last) % Pb != 0)
                        queue += sorted(new)
                    elif st.last is not None:
                        queue.append(st.last + Pb)
                    if queue:
                        st.last = queue[-1]
                elif st.windows >= self.acquire:
                    phi = self._phase(st.acc, None if st.last is None else st.last % Pb)
                    if st.last is None:
                        if phi is not None:
                            queue += [q * Pb + phi for q in range(w + 1) if q * Pb + phi >= st.base]
                    elif phi is None:                   # no signal: the grid freewheels
                        queue.append(st.last + Pb)
                    else:
                        b = w * Pb + phi
                        b += Pb * round((st.last + Pb - b) / Pb)
                        st.moves += int(b != st.last + Pb)
                        queue.append(b)
                    if queue:
                        st.last = queue[-1]
            # (with the caller's grid, a burst goes out once the window holding its last slot is
            # decided: a grid that moves in that window, e.g. bursts read again by a burst hold, is
            # then seen before the burst is cut, whatever the chunking)
            ready = end if phases is None else min(end, st.windows * Pb)
            while queue and ready >= queue[0] + L:
                b = queue.pop(0)
                if b >= st.base:
                    st.done = b + L
                    if self._is_break(tb[b - st.base:b - st.base + L], st):
                        ob.append(n_out)
                    n_out += L
                    oz.append(zb[b - st.base:b - st.base + L])
                    ot.append(tb[b - st.base:b - st.base + L])
                    e = np.zeros(L, bool)
                    e[0] = True
                    oe.append(e)
                progressed = True
            if not progressed:
                break
        if st.last is None:                             # keep the last `acquire` windows
            keep = max(st.windows - self.acquire, 0) * Pb
        else:
            keep = min([st.windows * Pb, st.last + Pb // 2] + queue)
        keep = min(max(keep, st.base), end)
        st.z, st.t = zb[keep - st.base:].copy(), tb[keep - st.base:].copy()
        if phases is not None:
            st.ph = pb[keep - st.base:].copy()
        st.base = keep
        st.queue = tuple(queue)
        cat = (lambda a, dt: np.concatenate(a) if a else np.zeros(0, dt))
        return cat(oz, np.float64), cat(ot, np.float64), cat(oe, bool), np.array(ob, np.int64), st

    def _is_break(self, t, st: BurstGridState) -> bool:
        """Whether the burst whose slots lie at sample positions ``t`` (its first slots at least)
        is not the one after the last burst emitted (class doc, ``breaks``); notes it as the last."""
        t0, prev = float(t[0]), st.t_last
        st.t_last = t0
        if math.isnan(prev) or t.size < 2:
            return False
        T = (float(t[-1]) - t0) / (t.size - 1)          # slot period, in samples
        return not abs((t0 - prev) / T - self.Pb) <= self.L / 2

    def flush(self, state: BurstGridState):
        """End of record: the bursts decided but not emitted yet, then the burst expected after
        the last decided one (its window is incomplete), are emitted, as far as their slots
        arrived. Returns ``(z, t, erase, breaks, state)`` (as :meth:`push`)."""
        st = dataclasses.replace(state, acc=state.acc.copy())
        none = (np.zeros(0), np.zeros(0), np.zeros(0, bool), np.zeros(0, np.int64))
        if st.last is None:
            return none + (st,)
        oz, ot, oe, ob = [], [], [], []
        n_out = 0
        for b in tuple(st.queue) + ((st.queue[-1] if st.queue else st.last) + self.Pb,):
            a = b - st.base
            n = min(self.L, st.z.size - a)
            if a < 0 or n <= 0:
                continue
            if self._is_break(st.t[a:a + n], st):
                ob.append(n_out)
            n_out += n
            e = np.zeros(n, bool)
            e[0] = True
            oz.append(st.z[a:a + n])
            ot.append(st.t[a:a + n])
            oe.append(e)
            st.last = b
        st.queue = ()
        if not oz:
            return none + (st,)
        return np.concatenate(oz), np.concatenate(ot), np.concatenate(oe), np.array(ob, np.int64), st


class _BitHistory:
    """Two float64 values per stream bit (sample position, LLR) for a sliding range of bits, in one
    ``(2, capacity)`` buffer: ``append`` adds bits at the end, ``drop`` forgets bits at the front.
    Amortised O(1) per bit (the capacity doubles when full; the live part moves to the front only
    when the dropped part is at least as long as it), where concatenating the whole history on
    every push cost O(retained bits) per push (about 14 FEC frames, ~230k bits, retained)."""

    def __init__(self):
        self._buf = np.empty((2, 0))
        self._lo = 0                             # first live column
        self._n = 0                              # live columns

    def row(self, i: int) -> np.ndarray:
        return self._buf[i, self._lo:self._lo + self._n]

    def append(self, t, llr):
        k = len(llr)
        cap = self._buf.shape[1]
        if self._lo + self._n + k > cap:
            if self._n + k <= self._lo and self._n + k <= cap:       # room at the front: move down
                self._buf[:, :self._n] = self._buf[:, self._lo:self._lo + self._n]
            else:
                new = np.empty((2, max(2 * (self._n + k), 4096)))
                new[:, :self._n] = self._buf[:, self._lo:self._lo + self._n]
                self._buf = new
            self._lo = 0
        j = self._lo + self._n
        self._buf[0, j:j + k] = t
        self._buf[1, j:j + k] = llr
        self._n += k

    def drop(self, k: int):
        k = min(max(int(k), 0), self._n)
        self._lo += k
        self._n -= k


@numba.njit(cache=True)
def _tracked_es(d, skip, m2, alpha, c0, s2, es_out):  # pragma: no cover - compiled
    """Running mean ``m2`` of ``d^2`` (exponential, weight ``alpha``; bits with ``skip`` not used)
    -> received energy per bit ``es = -s2 + sqrt(s2^2 + max(m2 - c0, 0))``, the root of
    ``E[d^2] = es^2 + 2 es s2 + c0``. Returns the final ``m2``."""
    for i in range(d.shape[0]):
        if not skip[i]:
            m2 += alpha * (d[i] * d[i] - m2)
        es_out[i] = -s2 + math.sqrt(s2 * s2 + max(m2 - c0, 0.0))
    return m2


class DPSKSampleReceiver:
    """Balanced-detector samples -> checked TM transfer frames (see the module docstring).

    Parameters
    ----------
    link : :class:`DPSKLink` (or use :meth:`from_dict`).
    sync_options : extra :class:`FrameSyncConfig` fields of the FEC-frame ASM synchroniser
        (polarity-free Massey rule by default).   frontend_options : extra :class:`FrontEndConfig` fields.
    decode_options : extra keyword arguments of ``DVBS2Code.decode`` (algorithm, scale, offset).

    lookback : FEC frames looked for before a new lock (default ``LOOKBACK_FRAMES`` = 8; 0 = off).
    launcher : where the LDPC + BCH decoder runs: None (default) the CPU, a kernel launcher
        (:func:`modem.backend.fec_launcher` for the GPU) the CUDA kernels (same decisions; the
        ``algorithm`` of ``decode_options`` must then be 'minsum' or 'minsum-serial').

    ``push(samples)``, ``flush()``, ``stats``, ``reset()`` as :class:`SCPPMSampleReceiver`;
    ``stats.codewords`` counts FEC frames, ``stats.codewords_crc_failed`` those not valid (LDPC
    checks or BCH failed, or fewer than k non-erased LLRs).

    Lock confirmation and marker integration (no channel interleaver): every SEARCH candidate of
    the FEC-frame synchroniser is confirmed by decoding its first frame (``confirm`` of
    :meth:`ASMFrameSync.push`, LDPC checks + BCH, the result kept for the frame). A candidate whose
    frame fails is rejected (``fec_sync_state.false_locks``) and the search resumes at the bit
    after its marker, so random data scoring above the threshold no longer holds a false lock
    for 4 flywheel frames while the true marker (possibly inside the false frame) goes by; a
    confirmed lock keeps its flywheel through fades. The search also sums the polarity-free
    Massey metrics of up to 4 consecutive periods at the same offset (``FEC_SYNC_INTEGRATE``,
    threshold 14; false hits on random data bounded in :class:`FrameSyncConfig`), so a record
    none of whose markers reaches 12 alone is still found. A true lock whose first frame fails is
    rejected too; the next marker then locks and the look-back reports the failed frame. With a
    channel interleaver (frames not decodable one by one) a candidate is confirmed by the next
    marker at the expected place instead (``FEC_SYNC_INTERLEAVED``, CHECK), without integration.
    Measured (continuous, 1.5-1.8 photons/bit, the tests' near-threshold generator): false locks
    0/300 records of 40 TM frames (2/300 before, 23/40 TM frames each; 11976 vs 11942 of 12000
    TM frames); records never locked 0/300 of 8 TM frames at 1.5 (66/300 before).

    Look-back at a new lock: the ASM search needs a Massey metric of 12 (random data reaches
    ~11 in 10^5 positions), which near the LDPC threshold only about half of the markers reach, so a
    lock often comes one or more FEC frames after the first. When the synchroniser emits the
    first frame of a new lock (offset ``p``, not contiguous with the last frame emitted, or of
    the other polarity: a polarity flip in the stream, whose lock is lost and found again at the
    same FEC-frame phase), the receiver looks in the LLRs it retains (``lookback`` periods
    before the synchroniser's buffer start: bounded memory, independent of chunking) for the
    marker one period earlier (``p - P``
    +- slip, the lock's polarity), then one earlier again, up to ``lookback`` frames, never
    overlapping the previous lock's frames. Without a channel interleaver each such frame is
    decoded at once: a valid one is taken and the look-back goes on; a failed one is taken (and
    reported failed) only when its marker passes the lock threshold, and the look-back stops there
    unless its marker passes the search threshold (a true marker whose frame failed: it may be a
    candidate the confirmation rejected, with decodable frames before it). With
    an interleaver a frame is taken while its marker passes the lock threshold. Look-back frames
    go through the chain in stream order before the lock frame (``lookback_frames`` counts them).
    A look-back frame that fails at its best marker position is also tried at exactly one period
    before (a marker read a bit off its data, as in a first burst read a slot off).

    Stream breaks (burst mode): the burst grid reports a break where a burst it hands on is not the
    one after the previous (:meth:`BurstGrid.push`: the grid re-acquired on other bursts, e.g. a
    second record appended to a first, a transmitter restarting its burst schedule, bursts lost
    upstream). The synchroniser leaves its lock there (:meth:`ASMFrameSync.push` ``breaks``): the
    frames before the break are emitted as usual, the frame the break cuts only if its marker was
    found (it then fails: the loss is counted), and the search starts at the break; a new lock's
    look-back does not go back before it, and the TM deframer restarts. Without a break the lock
    flywheeled 3 frames on at the old bit phase into the new record (all failed), lost it at the
    4th, and the look-back stopped at the last frame emitted: the second record's first 3 FEC
    frames were lost (3 of 12 TM frames at divider 4, 256-bit bursts, 6 photons/bit; now none).
    Where no break is seen (the bursts moved by less than half a burst, which the front end
    follows as it would a drift: gap 700 in ``tests/test_burst_regrid.py``), the look-back of the
    new lock also reaches over the old lock's last frames that the flywheel emitted and that
    failed, down to the end of its last frame found or valid, taking only frames that decode valid
    there (no interleaver; the failed flywheel frames stay counted). In continuous mode no break is
    ever seen, and this look-back is what recovers a second record appended to a first: its first
    3 FEC frames were lost before (9/12 TM frames at 3 and 6 photons/bit, gaps 13 to 5555 slots;
    now 12/12, ``tests/test_dpsk_records.py``); a lock lost in a fade may likewise find a valid
    frame under the flywheel's failed ones.

    Realignment of a failed frame (no interleaver): a FEC frame that fails is held until the next
    frame's marker is found; when that marker is ``d != 0`` bits off the period (the synchroniser
    re-times), the held frame is decoded again aligned on it (``next - P``) and the valid result
    kept (``realigned`` counts them). (Duty 1/40: a first burst read a slot off puts the first
    frame's marker one bit off the rest of its data; that candidate now fails its confirmation,
    and the look-back decodes the frame at one period before the next marker.) Failed frames reach the deframer one frame late, or, when no frame follows them
    contiguously, once none can any more (at most the look-back's reach later; order is kept,
    flush releases).

    Burst mode with a burst-periodic front end (duty 1/40): the burst grid takes its phase from
    the front end's own burst grid (:attr:`FrontEndState.burst_start`) instead of its energy fold,
    which over the first windows, while the front end's edges were still settling, picked a phase
    a slot off for whole windows of bursts.

    Measured (divider 40, 256-bit bursts, 6 photons/bit, 40 random records of 20 TM frames:
    offsets 0, +-150, +-250 ppm, random phase and lead; the tests' generator): records decoded
    whole 27/30 before (seeds 0-29), 39/40 with the front end's held-back jumps and the grid from
    the front end, 40/40 with the realignment too (seeds 0-39).
    """

    def __init__(self, link: DPSKLink, sync_options: dict | None = None, frontend_options: dict | None = None,
                 decode_options: dict | None = None, deframer_options: dict | None = None,
                 lookback: int = LOOKBACK_FRAMES, launcher=None):
        if not isinstance(link, DPSKLink):
            raise ConfigError(f"DPSKSampleReceiver: link must be a DPSKLink, got {type(link).__name__}")
        if isinstance(lookback, bool) or not isinstance(lookback, (int, np.integer)) or not 0 <= lookback <= 64:
            raise ConfigError(f"DPSKSampleReceiver: lookback must be an integer in 0..64, got lookback={lookback!r}")
        self.lookback = int(lookback)
        self.interleaver = link.interleaver
        self._H = None
        self.link, self.code, self.spec = link, link.code, link.spec
        self.fmt = link.burst_format
        self.frontend = SampleFrontEnd(link._frontend_config(**{**link._burst_options(), **(frontend_options or {})}))
        self.grid = None if self.fmt.continuous else BurstGrid(self.fmt)
        rx = link.receiver_model
        self._llr_args = dict(es=rx.es, sigma2=rx.sigma2, modes=rx.modes,
                              extra_var=(link.thermal_sigma ** 2 + link.adc_noise_var) * self.frontend.noise_gain)
        n = self.code.n
        defaults = dict(FEC_SYNC_DEFAULTS)
        if self.interleaver.depth == 1:            # candidates are confirmed by decoding their first frame
            defaults.update(FEC_SYNC_INTEGRATE)
        else:                                      # ... or, interleaved, by the next marker (CHECK)
            defaults.update(FEC_SYNC_INTERLEAVED)
        self.fec_sync = ASMFrameSync(FrameSyncConfig(frame_len=n, **{**defaults, **(sync_options or {})}))
        self._sign = (1.0 - 2.0 * pn8(n)).astype(np.float32)
        self.decode_options = dict(decode_options or {})
        from .fec.dvbs2.code import GPU_ALGORITHMS  # noqa: PLC0415
        if launcher is not None and self.decode_options.get("algorithm", "minsum") not in GPU_ALGORITHMS:
            raise BackendUnavailable(f"DPSKSampleReceiver: the GPU kernels implement {', '.join(GPU_ALGORITHMS)}, "
                                     f"got algorithm={self.decode_options['algorithm']!r}; decode it on the CPU")
        self.launcher = launcher
        self.deframer_options = dict(deframer_options or {})
        self.reset()

    @classmethod
    def from_dict(cls, d: dict, strict: bool = True, **options) -> "DPSKSampleReceiver":
        """Receiver from a plain dict of :class:`DPSKLink` keys (see its docstring)."""
        return cls(DPSKLink.from_dict(d, strict=strict), **options)

    def reset(self):
        self.stats = ReceiverStats()
        self._fe_state = self.frontend.initial_state()
        self._grid_state = None if self.grid is None else self.grid.initial_state()
        self._fs_state = self.fec_sync.initial_state()
        self._deframer = TMDeframer(self.spec, self.code.k, self.stats, 1e12 / self.link.sample_rate_hz,
                                    sample_times=True, options=self.deframer_options)
        a = self._llr_args                      # running E[d^2], started at its nominal value
        self._m2 = a["es"] ** 2 + 2.0 * a["es"] * a["sigma2"] + 2.0 * a["modes"] * a["sigma2"] ** 2 + a["extra_var"]
        self._bits = 0                           # bits fed to the FEC-frame synchroniser
        # sample positions and LLRs of bits [_t_base, _bits) (look-back at a new lock, re-timing)
        self._hist = _BitHistory()
        self._t_base = 0
        self._last_off = None
        self._n_cw = 0
        self._run = []                          # wire frames of the current interleaver run
        self._block_phase = None
        #: syndrome weights of the D block-phase hypotheses, per (re)acquisition
        self.block_phase_weights = []
        #: FEC frames found by the look-back at a new lock (valid or failed; counted in stats too)
        self.lookback_frames = 0
        #: failed FEC frames that decoded when aligned on the next frame's marker
        self.realigned = 0
        self._held = None                       # a failed frame waiting for the next marker
        self._restart_pending = False           # the deframer restarts before the next codeword
        self._confirmed = {}                    # marker offset -> decoded result of a confirmed candidate
        self._breaks = []                       # stream bit indices of burst-grid moves (ascending)
        self._last_good = None                  # the last frame whose marker was found or that decoded
        self._grid_breaks = ()                  # ... of the bits given to the next _after_bits call
        self._last_inv = None                   # polarity of the last wire frame (a new lock may flip it)
        self._loss = None                       # (bit, time of the old lock's good end) of the open loss

    @property
    def _t_hist(self) -> np.ndarray:
        """Sample positions of the retained bits ``[_t_base, _bits)`` (a view; valid until the next push)."""
        return self._hist.row(0)

    @property
    def _llr_hist(self) -> np.ndarray:
        """LLRs of the retained bits ``[_t_base, _bits)`` (a view; valid until the next push)."""
        return self._hist.row(1)

    @property
    def es_estimate(self) -> float:
        """The receiver's current estimate of the received energy per bit (photons/bit at the
        preamplifier input for an ideal one; the nominal ``E_b`` with ``power_bits = 0``)."""
        a = self._llr_args
        if self.link.power_bits == 0:
            return float(a["es"])
        c0 = 2.0 * a["modes"] * a["sigma2"] ** 2 + a["extra_var"]
        return float(-a["sigma2"] + math.sqrt(a["sigma2"] ** 2 + max(self._m2 - c0, 0.0)))

    @property
    def fec_sync_state(self):
        return self._fs_state

    def push(self, samples) -> list[ReceivedFrame]:
        y = _check_samples(samples, "DPSKSampleReceiver.push")
        s, fe_state = self.frontend.push(y, self._fe_state)
        self._fe_state = fe_state
        self.stats.samples += int(y.size)
        return self._from_slots(s)

    def _from_slots(self, s) -> list[ReceivedFrame]:
        """Front-end slots (after ``self._fe_state`` took them) -> [burst grid] -> bit LLRs -> frames."""
        if self.grid is None:
            z, t, erase, brk = s.z, s.t, None, ()
        else:
            # burst-periodic front end: it has placed every burst start on its own grid (edges
            # measured burst by burst, then locked); the fold of the first windows, where that
            # grid may still be settling, picked a phase a slot off for whole windows of bursts
            periodic = self.frontend.config.burst_period > 0
            z, t, erase, brk, self._grid_state = self.grid.push(s.z, s.t, self._grid_state,
                                                                phases=s.grid_start if periodic else None)
        self._grid_breaks = brk
        return self._after_bits(self._bit_llr(z, erase), t)

    def flush(self) -> list[ReceivedFrame]:
        """End of record: the burst grid releases the last burst if all its slots arrived, and
        ``slip`` erased bits let the synchroniser close the last FEC frame (its marker search
        window reaches past the frame end). Before that the front end reads the slots it still
        held back (:meth:`SampleFrontEnd.drain`), so a FEC frame that ends with the record is
        complete. The receiver is then at the end of its record: ``reset()`` before pushing another."""
        s, self._fe_state = self.frontend.drain(self._fe_state)
        _, self._fe_state = self.frontend.flush(self._fe_state)
        frames = self._from_slots(s)
        if self.grid is not None:
            z, t, erase, brk, self._grid_state = self.grid.flush(self._grid_state)
            if z.size:
                self._grid_breaks = brk
                frames += self._after_bits(self._bit_llr(z, erase), t)
        pad = self.fec_sync.cfg.slip
        frames += self._after_bits(np.zeros(pad), np.full(pad, np.nan))
        frames += self._release_held(None)
        # a discontinuity after the last codeword (the stream ran on past it) loses nothing: the
        # TM frame that ends with that codeword is closed by the deframer's flush (restarting
        # the deframer first threw it away)
        self._restart_pending = False
        return frames + self._deframer.flush()

    def _bit_llr(self, z, erase) -> np.ndarray:
        """Gaussian-moment bit LLRs (positive = bit 0) with the nominal or the tracked energy per bit."""
        a = self._llr_args
        if self.link.power_bits == 0:
            llr = dpsk_bit_llr(z, **a)
        else:
            z = np.ascontiguousarray(z, dtype=np.float64)
            skip = np.zeros(z.size, np.bool_) if erase is None else np.ascontiguousarray(erase, np.bool_)
            es = np.empty(z.size)
            c0 = 2.0 * a["modes"] * a["sigma2"] ** 2 + a["extra_var"]
            self._m2 = _tracked_es(z, skip, self._m2, 1.0 / self.link.power_bits, c0, a["sigma2"], es)
            llr = 2.0 * es * z / (c0 + 2.0 * es * a["sigma2"])
        llr = llr * self.link.llr_scale
        if erase is not None:
            llr[erase] = 0.0
        return llr

    def _after_bits(self, llr, t) -> list[ReceivedFrame]:
        """Bit LLRs and their sample positions -> frames. Fed to the FEC-frame synchroniser in
        pieces of at most one sync period P, so that each piece holds at most one lock loss and
        one lock gain, in that order (a loss needs flywheel + 1 missed markers after a gain, more
        than P bits; see :meth:`_fec_sync_events`): the sync events are then the same whatever
        the chunking (a push of several periods used to merge two gains or losses into one event,
        or drop one). The breaks of the burst grid's output (:meth:`BurstGrid.push`: indices
        into ``llr`` of the first bit after each grid move, left in ``_grid_breaks`` by the caller)
        go to the synchroniser with the piece that holds them."""
        P = self.fec_sync.cfg.period
        llr = np.asarray(llr, np.float64)
        t = np.asarray(t, np.float64)
        brk = np.asarray(self._grid_breaks, np.int64) + self._bits          # stream bit indices
        self._grid_breaks = ()
        if llr.size <= P:
            return self._after_bits_piece(llr, t, brk)
        frames = []
        for a in range(0, llr.size, P):
            b = self._bits
            frames += self._after_bits_piece(llr[a:a + P], t[a:a + P], brk[(brk >= b) & (brk < b + P)])
        return frames

    def _break_in(self, a: int | None, b: int) -> int | None:
        """The latest stream break in ``(a, b]`` (``a`` None: ``[0, b]``), or None."""
        inside = [v for v in self._breaks if (a is None or v > a) and v <= b]
        return inside[-1] if inside else None

    def _after_bits_piece(self, llr, t, breaks) -> list[ReceivedFrame]:
        P = self.fec_sync.cfg.period
        slip = self.fec_sync.cfg.slip
        self._hist.append(t, llr)
        self._bits += llr.size
        self._breaks += [int(b) for b in breaks]
        prev = self._fs_state
        out, self._fs_state = self.fec_sync.push(llr, self._fs_state,
                                                 confirm=self._confirm if self.interleaver.depth == 1 else None,
                                                 breaks=breaks)
        # wire frames in stream order: (marker offset, frame LLRs (n,) float32 polarity-corrected,
        # marker metric, decoded result or None); the first frame of a new lock (not one period
        # after the last frame, or after a break) brings the frames the look-back finds before it
        # (a lock keeps its polarity: a frame of the other polarity one period on is a new lock too,
        # e.g. after a polarity flip in the stream, whose flywheel frames the look-back then reads)
        wire = []
        last, last_inv = self._last_off, self._last_inv
        start, good_old = None, None            # first wire frame of a new lock; _last_good before it
        for i in range(len(out)):
            off, inv = int(out.offset[i]), bool(out.inverted[i])
            sgn = -1.0 if inv and self.fec_sync.cfg.correct_polarity else 1.0   # as out.llr
            if (last is None or not P - slip <= off - last <= P + slip or self._break_in(last, off) is not None
                    or inv != last_inv):
                if start is None:
                    start, good_old = len(wire), self._last_good
                wire += [w + (sgn,) for w in self._look_back(off, inv, last)]
            wire.append((off, out.llr[i], float(out.metric[i]), self._confirmed.pop(off, None), sgn))
            if out.state[i] == SyncMode.LOCK:
                self._last_good = off
            last, last_inv = off, inv
        self._last_inv = last_inv
        self._confirmed = {k: v for k, v in self._confirmed.items() if k == self._fs_state.cand_pos}
        self._fec_sync_events(prev, self._fs_state, [w[0] for w in wire], start,
                              self._last_good if start is None else good_old)
        # (codeword LLRs (n,) de-randomized, t, metric, result, offset, polarity, restart before it)
        ready = []
        for off, f, metric, res, sgn in wire:
            if self._last_off is not None and (not (P - slip <= off - self._last_off <= P + slip)
                                               or self._break_in(self._last_off, off) is not None):
                self._discontinuity()
            self._last_off = off
            j = off - self._t_base
            t0 = float(self._t_hist[j]) if 0 <= j < self._t_hist.size else float("nan")
            if self.interleaver.depth == 1:
                ready.append([f * self._sign, t0, metric, res, off, sgn, self._restart_pending])
                self._restart_pending = False
            else:
                self._run.append((f, t0, metric))
                for r in self._deinterleave_ready():
                    ready.append(list(r) + [None, None, None, self._restart_pending])
                    self._restart_pending = False
        todo = [i for i, r in enumerate(ready) if r[3] is None]
        if todo:
            res = self._decode(np.stack([ready[i][0] for i in todo]))
            for i, r in zip(todo, res):
                ready[i][3] = r
        frames = []
        for _, t0, metric, res, off, sgn, restart in ready:
            if off is not None and res[0] and (self._last_good is None or off > self._last_good):
                self._last_good = off
            frames += self._release_held(None if restart else off)
            if restart:
                self._deframer.restart()
            if off is not None and not res[0]:
                self._held = (t0, metric, res, off, sgn)      # wait for the next frame's marker
            else:
                frames += self._to_deframer(t0, metric, res)
        # keep the bits the synchroniser may still emit frames from, and the look-back's reach
        # before the earliest position a new lock can have (buf_start)
        reach = max(2 * P, self.lookback * (P + slip) + slip)
        if self._held is not None and self._held[3] + P + slip < self._fs_state.buf_start - reach:
            frames += self._release_held(None)      # no frame can follow it contiguously any more
        keep = max(self._fs_state.buf_start - reach, self._t_base)
        if self._held is not None:                  # the held frame may be re-timed by up to slip
            keep = max(min(keep, self._held[3] - slip), self._t_base)
        keep = min(keep, self._bits)
        self._hist.drop(keep - self._t_base)
        self._t_base = keep
        # breaks after the last frame (a new lock's look-back stops at the latest one), of those
        # before the retained bits only the latest
        bs = [b for b in self._breaks if self._last_off is None or b > self._last_off]
        below = [b for b in bs if b <= self._t_base]
        self._breaks = below[-1:] + [b for b in bs if b > self._t_base]
        return frames

    def _to_deframer(self, t0, metric, res) -> list[ReceivedFrame]:
        ok, parity_ok, bch, it, u_hat = res
        self.stats.codewords += 1
        self.stats.codewords_crc_failed += int(not ok)
        frames = self._deframer.push(self._n_cw, u_hat, ok, t0, it, (parity_ok, bch, it, metric))
        self._n_cw += 1
        return frames

    def _release_held(self, next_off: int | None) -> list[ReceivedFrame]:
        """Pass on the held failed frame (no interleaver). When the next frame's marker was found
        ``d != 0`` bits off the period (the synchroniser re-timed: a slip inside the held frame, or
        its own marker read a bit off, e.g. in a first burst whose edge was a slot off), the held
        frame is decoded again aligned on the next marker (``next_off - P``) and that result is
        kept if valid (``realigned`` counts them)."""
        if self._held is None:
            return []
        t0, metric, res, off, sgn = self._held
        self._held = None
        cfg = self.fec_sync.cfg
        P, m = cfg.period, cfg.marker_len
        if next_off is not None and next_off - off != P and abs(next_off - off - P) <= cfg.slip:
            q = next_off - P
            if q - self._t_base >= 0:
                f = (sgn * self._llr_hist[q + m - self._t_base:q + P - self._t_base]).astype(np.float32)
                r2 = self._decode((f * self._sign)[None])[0]
                if r2[0]:
                    j = q - self._t_base
                    t0 = float(self._t_hist[j]) if j < self._t_hist.size else float("nan")
                    res = r2
                    self.realigned += 1
        return self._to_deframer(t0, metric, res)

    def _confirm(self, f, off: int, inverted: bool) -> bool:
        """The FEC-frame synchroniser's check of a new candidate (no interleaver): its first frame
        (``f`` (n,) float32, polarity-corrected) must decode valid (LDPC parity checks and BCH; the
        TM frames' CRC-16 is checked downstream as for every frame). The result is kept for the
        frame's emission, so the frame is decoded once."""
        res = self._decode((f * self._sign)[None])[0]
        if res[0]:
            self._confirmed[off] = res
        return res[0]

    def _decode(self, cw) -> list[tuple]:
        """DVB-S2 decoding of de-randomized codeword LLRs ``(F, n)`` -> per codeword ``(valid,
        parity_ok, bch_corrected, iterations, u_hat (k,) uint8)``. A codeword with fewer than ``k``
        non-zero (non-erased) LLRs is not valid whatever the decoder says: it is underdetermined
        (all-zero LLRs, e.g. a gap of zero samples, satisfy every parity check as the all-zero
        codeword)."""
        res = self.code.decode(cw, max_iter=self.link.max_iter, launcher=self.launcher, **self.decode_options)
        seen = np.count_nonzero(cw, axis=1) >= self.code.k
        return [(bool(res.valid[i]) and bool(seen[i]), bool(res.parity_ok[i]), int(res.bch_corrected[i]),
                 int(res.iterations[i]), res.u_hat[i]) for i in range(cw.shape[0])]

    def _look_back(self, p: int, inverted: bool, last: int | None) -> list:
        """Wire frames before a new lock at marker offset ``p`` (see the class doc), from the
        retained LLRs: up to ``lookback`` periods back, each marker looked for at the previous
        one - P +- slip with the lock's polarity, not before the end of the previous lock's last
        frame (``last``) nor the stream start, and not before the latest break (burst-grid move)
        after ``last``: the frames of the new stream from there on, overlapping the last frame
        when that one was cut by the break. Without an interleaver a frame is taken when it
        decodes valid, or reported failed when its marker passes the lock threshold (and the
        look-back stops there, unless the marker passes the search threshold); with one (the block phase is not known yet) when its marker
        passes the lock threshold. Returns ``[(offset, llr (n,) float32, metric, result | None)]``
        in stream order."""
        cfg = self.fec_sync.cfg
        P, m, slip = cfg.period, cfg.marker_len, cfg.slip
        lower = 0 if last is None else last + P - slip
        b = self._break_in(last, p)
        if b is not None:
            lower = b
        # ... and over the previous lock's last frames that the flywheel emitted and that failed (a
        # discontinuity no break marked: the old frame phase ran on over a new stream -- two
        # records back to back, bursts moved by less than half a burst), frames that decode valid,
        # down to the end of its last frame found or valid
        lower_valid = lower
        if (b is None and last is not None and self._last_good is not None and self._last_good < last
                and self.interleaver.depth == 1):
            lower_valid = max(self._last_good + P - slip, 0)
        fsgn = -1.0 if inverted and cfg.correct_polarity else 1.0   # frame LLRs, as the synchroniser's
        order = [slip] + [slip + d * s for d in range(1, slip + 1) for s in (-1, 1)]    # 0, -1, +1, -2, ...
        found = []
        q = p
        for _ in range(self.lookback):
            e = q - P                                   # the position one period before
            strict = e + slip < lower                   # over the failed flywheel frames: valid only
            lo = max(lower_valid if strict else lower, self._t_base)
            if e + slip < lo:
                break
            a = e - slip
            a0 = max(a, lo)                             # candidates a0 .. e + slip (clipped at the start)
            # the synchroniser's own marker score (Massey or hard) and lock threshold
            score, _ = self.fec_sync._score(self._llr_hist[a0 - self._t_base:e + slip + m - self._t_base], False,
                                            inverted)
            thr = self.fec_sync._lock_min
            cand = [k for k in order if a + k >= a0]
            best = max(cand, key=lambda k: (score[a + k - a0], -order.index(k)))
            q, metric = a + best, float(score[a + best - a0])
            f = (fsgn * self._llr_hist[q + m - self._t_base:q + P - self._t_base]).astype(np.float32)
            if self.interleaver.depth > 1:
                if metric < thr:
                    break
                found.append((q, f, metric, None))
                continue
            res = self._decode((f * self._sign)[None])[0]
            if not res[0] and q != e and e >= a0:       # the marker a bit off: try the period too
                f2 = (fsgn * self._llr_hist[e + m - self._t_base:e + P - self._t_base]).astype(np.float32)
                r2 = self._decode((f2 * self._sign)[None])[0]
                if r2[0]:
                    q, f, metric, res = e, f2, float(score[e - a0]), r2
            if strict and not res[0]:
                break
            if res[0] or metric >= thr:
                found.append((q, f, metric, res))
            if not res[0] and not metric >= self.fec_sync._search_min:
                break
        self.lookback_frames += len(found)
        return found[::-1]

    def _bit_time_ps(self, bit: int) -> float:
        j = bit - self._t_base
        t = float(self._t_hist[j]) if 0 <= j < self._t_hist.size else float("nan")
        return t / self.link.sample_rate_hz * 1e12

    def _fec_sync_events(self, prev, new, offsets, start=None, good=None):
        """Lock gains / losses of the FEC-frame synchroniser as ``acquired`` / ``loss_of_signal``.

        ``offsets``: marker offsets of this push's wire frames (look-back frames included);
        ``start``: index in ``offsets`` of the first frame of a new lock (None: none in this push);
        ``good``: the old lock's last frame found or valid (``_last_good`` before the new lock).
        Times: the first frame of a new lock (the first look-back frame when the look-back found
        any) / the expected marker after the last frame of the lost lock, or the break that cut
        that frame when it came earlier (samples lost upstream inside a frame whose marker was
        found: the new stream's first marker may come before the old phase's next one), as far as
        the bit times are still held (NaN otherwise). A loss never ends before it starts: when the
        new lock's first frame lies before the loss (its look-back read the old lock's failed
        flywheel frames again: two records back to back, a polarity flip), the loss starts at the
        end of the old lock's last frame found or valid, or at the new lock's first frame if that
        is earlier (within ``slip``: the acquisition itself). One loss and one gain per push at
        most are resolved this way (the synchroniser needs several frame periods for either):
        :meth:`_after_bits` feeds it at most one period at a time."""
        P, slip = self.fec_sync.cfg.period, self.fec_sync.cfg.slip
        offs = ([] if self._last_off is None else [self._last_off]) + [int(o) for o in offsets]
        jump = None if start is None else len(offs) - len(offsets) + start     # index in offs
        if new.lock_losses > prev.lock_losses:
            before = offs if jump is None else offs[:jump]
            if before:
                pos = before[-1] + P
                cut = [v for v in self._breaks if before[-1] < v < pos]       # a break cut the last frame
                if cut:
                    pos = cut[0]
            else:
                pos = new.search_pos
            _record_event(self.stats, "loss_of_signal", self._bit_time_ps(int(pos)),
                          {"lock_losses": new.lock_losses - prev.lock_losses})
            self._loss = (int(pos), math.nan if good is None else self._bit_time_ps(good + P))
        if new.locks > prev.locks:
            if jump is not None:
                first = offs[jump]
            elif len(offsets):
                first = int(offsets[0])
            else:
                first = new.next_pos
            t = self._bit_time_ps(first)
            ev = self.stats.events
            if (self._loss is not None and first < self._loss[0] and ev and ev[-1].kind == "loss_of_signal"
                    and ev[-1].t_end_ps is None):
                t_good = self._loss[1]
                t0 = t_good if first < self._loss[0] - slip and t_good <= t else t
                ev[-1] = dataclasses.replace(ev[-1], t_start_ps=t0)
            self._loss = None
            _record_event(self.stats, "acquired", t, {"inverted": bool(new.inverted), "locks": new.locks - prev.locks})

    def _discontinuity(self):
        """The FEC-frame stream is not contiguous: the TM frame in progress and (interleaver) the
        block in progress are lost; the block phase is found again. The TM deframer restarts
        before the next codeword it gets (codewords from before the discontinuity go first)."""
        self._restart_pending = True
        self._run = []
        self._block_phase = None

    def _syndrome_weight(self, rows) -> int:
        """Unsatisfied parity checks of the hard decisions of D wire frames taken as one block."""
        D, n = self.interleaver.depth, self.code.n
        c = self.interleaver.deinterleave(np.concatenate(rows)).reshape(D, n) * self._sign
        hard = (c < 0).astype(np.int64)
        return int(((self._H @ hard.T) % 2).sum())

    def _deinterleave_ready(self) -> list:
        """Block interleaver of depth D: find the block phase (which wire frame is row 0 of a
        block) once 2D-1 contiguous frames are in, by the fewest unsatisfied LDPC parity checks
        over the D hypotheses (the right one leaves only the channel errors; a wrong one about
        half the checks); then release the D codewords of every complete block."""
        D = self.interleaver.depth
        if self._block_phase is None:
            if len(self._run) < 2 * D - 1:
                return []
            if self._H is None:
                self._H = self.code.ldpc.parity_check_matrix().astype(np.int32)
            w = [self._syndrome_weight([r[0] for r in self._run[h:h + D]]) for h in range(D)]
            self._block_phase = int(np.argmin(w))
            self.block_phase_weights.append(tuple(w))
            self._run = self._run[self._block_phase:]
        ready = []
        while len(self._run) >= D:
            block, self._run = self._run[:D], self._run[D:]
            c = self.interleaver.deinterleave(np.concatenate([r[0] for r in block])).reshape(D, -1) * self._sign
            ready += [(c[i], block[0][1], block[0][2]) for i in range(D)]
        return ready


# =================================================================================================
# factories from plain dicts

_LINKS = {SCPPMAPDLink.chain: SCPPMAPDLink, DPSKLink.chain: DPSKLink}
_RECEIVERS = {SCPPMAPDLink.chain: SCPPMSampleReceiver, DPSKLink.chain: DPSKSampleReceiver}


def link_from_dict(d: dict, strict: bool = True):
    """:class:`SCPPMAPDLink` or :class:`DPSKLink` from a dict whose ``"chain"`` (or ``"modem:chain"``)
    is ``"scppm-apd"`` or ``"dpsk"``; other keys as the dataclass fields."""
    dd = _strip_prefix(d)
    chain = dd.get("chain")
    if chain not in _LINKS:
        raise ConfigError(f"link_from_dict: chain must be one of {sorted(_LINKS)}, got chain={chain!r}")
    return _LINKS[chain].from_dict(dd, strict=strict)


def receiver_from_dict(d: dict, strict: bool = True, **options):
    """The sample receiver of the link described by ``d`` (see :func:`link_from_dict`)."""
    link = link_from_dict(d, strict=strict)
    return _RECEIVERS[link.chain](link, **options)
