# SPDX-License-Identifier: Apache-2.0
"""Capture generator: realistic recordings from the project's transmitter and channel models.

SCPPM photon-counting pass (:func:`generate_scppm_pass`)::

    CCSDS space packets (random APIDs 0x100..0x104, random lengths, seeded)
      -> TMPacketizer: TM transfer frames (FECF on), Only-Idle-Data frames as lead-in, around the
         cloud and as tail-out
      -> ASM 0x1ACFFC1D per frame -> k-bit blocks -> SCPPMTransmitter (CCSDS 142.0-B-1)
      -> simulate_time_tags: SNSPD array (efficiency, dark counts, dead time per pixel, jitter),
         clock offset and drift, background, cloud (no signal/background for an interval)
      -> time tags (int64 ps, channel) written as HDF5 and/or PTU T2.

**Payload.** The SHA-256 a capture must decode to is over the concatenation, in transmission
order, of every non-idle space packet (primary header + data field, as octets) carried by the
data frames. The idle frames are laid out so that the receiver can lose them without losing
payload: ``lead_in`` frames before the first packet (slot-clock acquisition, codeword sync and the
frame synchroniser's SEARCH/CHECK states eat the first frames), and around the cloud idle frames
for the duration of the outage plus re-acquisition (as a spacecraft that knows the ground
station's weather forecast would schedule), and ``tail`` frames at the end (the last codeword is
zero-padded and may not close). The decoder must therefore return every packet.

DPSK sample recordings (:func:`generate_dpsk_pass`): the same payload framing through the
DVB-S2 + DPSK transmitter ``modem.sample_receiver.dpsk_transmit_frames`` (burst mode, channel
interleaver, log-normal scintillation from ``modem.channel.fading`` on the optical field through
its ``scintillation`` input), a pre-amplified balanced receiver with thermal
noise, clock offset and an ADC; written as SigMF (ADC codes, ``ri8`` or ``ri16_le``, the narrowest
that holds them).
"""
from __future__ import annotations

import argparse
import hashlib
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ConfigError

__all__ = ["SCPPMPassSpec", "GeneratedPass", "DPSKPassSpec", "GeneratedSamples", "generate_dpsk_pass",
           "write_samples", "PRESETS", "DPSK_PRESETS", "make_packets", "frames_with_idle", "generate_scppm_pass",
           "payload_sha256"]


def payload_sha256(packets) -> str:
    """SHA-256 (hex) of the concatenated non-idle space packets (bytes, in order)."""
    h = hashlib.sha256()
    for p in packets:
        h.update(bytes(p))
    return h.hexdigest()


def _check_payload(who: str, spec) -> None:
    """ConfigError naming the value: n_packets >= 1, lead_in / tail >= 0, packet_len (min, max) in
    1..65536, seed >= 0 (numpy refuses a negative seed with a traceback)."""
    for name, lo in (("n_packets", 1), ("lead_in", 0), ("tail", 0), ("seed", 0)):
        v = getattr(spec, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ConfigError(f"{who}: {name} must be an integer >= {lo}, got {name}={v!r}")
    lo, hi = spec.packet_len
    if not 1 <= lo <= hi <= 65536:
        raise ConfigError(f"{who}: packet_len must be (min, max) with 1 <= min <= max <= 65536, "
                          f"got packet_len={spec.packet_len!r}")


@dataclass(frozen=True)
class SCPPMPassSpec:
    """Parameters of a generated SCPPM pass (incident photon numbers: before ``efficiency``).

    Attributes
    ----------
    M, rate : SCPPM code.   slot_width_ps : slot width.   ns : incident signal photons per pulse.
    interleaver_rows, interleaver_shift, repetition : the code's channel interleaver (N, B) and
        symbol repetition q_d (:class:`~modem.fec.scppm.SCPPMCode`; stored in the link parameters
        only when not the defaults 1, 0, 1).
    nb : incident background photons per slot.   frame_len, scid, vcid : TM frames (FECF on).
    n_packets : space packets in the payload; packet data fields of ``packet_len`` octets (min, max).
    lead_in, tail : idle frames before / after the payload.
    cloud_ms : duration of a cloud (no signal, no background; dark counts remain), 0 = none.
    cloud_at : fraction of the payload packets sent before the cloud.
    efficiency, dark_count_rate_hz (per pixel), dead_time_ps, n_channels, jitter_rms_ps,
    clock_offset_ppm, drift_ppm_per_s, t0_ps : detector and clock (see ``TimeTagConfig``).
    channel_delays_ps : None, or one cable delay (ps) per channel added to its tags (an uncalibrated
        SNSPD array; ``modem decode --deskew auto`` measures and removes it).
    max_iter : decoder iteration cap stored in the link parameters.   seed : everything random.
    extra : more link parameters for the receiver (e.g. ``clock_acq_max_guard_ratio``).
    """

    M: int = 16
    rate: str = "1/2"
    interleaver_rows: int = 1
    interleaver_shift: int = 0
    repetition: int = 1
    slot_width_ps: float = 1000.0
    ns: float = 3.0
    nb: float = 0.02
    frame_len: int = 1115
    scid: int = 0x42
    vcid: int = 1
    n_packets: int = 40
    packet_len: tuple = (60, 600)
    lead_in: int = 5
    tail: int = 3
    cloud_ms: float = 0.0
    cloud_at: float = 0.5
    efficiency: float = 0.8
    dark_count_rate_hz: float = 1e4
    dead_time_ps: float = 20000.0
    n_channels: int = 4
    jitter_rms_ps: float = 50.0
    clock_offset_ppm: float = 120.0
    drift_ppm_per_s: float = 40.0
    t0_ps: float = 1_234_567.0
    channel_delays_ps: tuple | None = None
    max_iter: int = 16
    seed: int = 1
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        _check_payload("SCPPMPassSpec", self)
        if not 0 < self.cloud_at < 1 or not (math.isfinite(self.cloud_ms) and self.cloud_ms >= 0):
            raise ConfigError(f"SCPPMPassSpec: cloud_at must be in (0, 1) and cloud_ms finite and >= 0, got "
                              f"cloud_at={self.cloud_at!r}, cloud_ms={self.cloud_ms!r}")
        v = self.slot_width_ps
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not (math.isfinite(float(v)) and float(v) > 0):
            raise ConfigError(f"SCPPMPassSpec: slot_width_ps must be finite and > 0, got slot_width_ps={v!r}")

    @property
    def nb_detected(self) -> float:
        """Detected background per slot, all pixels: efficiency*nb + dark counts."""
        return self.efficiency * self.nb + self.dark_count_rate_hz * self.n_channels * self.slot_width_ps * 1e-12

    def _code_options(self) -> dict:
        """The code's interleaver and repetition where they are not the defaults."""
        return {k: getattr(self, k) for k, default in (("interleaver_rows", 1), ("interleaver_shift", 0),
                                                        ("repetition", 1)) if getattr(self, k) != default}

    def code(self):
        from ..fec.scppm import SCPPMCode  # noqa: PLC0415
        return SCPPMCode(M=self.M, rate=self.rate, **self._code_options())

    def link_meta(self) -> dict:
        """The receiver's link parameters (what a capture stores as its metadata)."""
        return {"chain": "scppm", "M": self.M, "rate": self.rate, **self._code_options(),
                "slot_width_ps": float(self.slot_width_ps),
                "ns": float(self.efficiency * self.ns), "nb": float(self.nb_detected),
                "frame_len": self.frame_len, "scid": self.scid, "vcid": self.vcid, "fecf": True, "ocf": False,
                "max_iter": self.max_iter, "n_channels": self.n_channels, **self.extra}

    def generator_meta(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("extra", "description")
             and (k not in ("interleaver_rows", "interleaver_shift", "repetition") or k in self._code_options())
             and (k != "channel_delays_ps" or v is not None)}
        if self.channel_delays_ps is not None:
            d["channel_delays_ps"] = [float(x) for x in self.channel_delays_ps]
        d["packet_len"] = list(self.packet_len)
        return d


@dataclass
class GeneratedPass:
    """A generated pass: tags, link parameters, and what it must decode to."""

    t_ps: np.ndarray
    channel: np.ndarray
    meta: dict
    packets: list
    payload_sha256: str
    n_frames: int
    n_data_frames: int
    n_codewords: int
    cloud_ps: tuple | None
    generator: dict


def make_packets(n: int, length: tuple, rng) -> list[bytes]:
    """``n`` space packets with APIDs 0x100..0x104, sequence counts 0.., random data of ``length``."""
    from ..framing.packets import build_space_packet  # noqa: PLC0415
    lo, hi = length
    return [build_space_packet(0x100 + i % 5, rng.bytes(int(rng.integers(lo, hi + 1))), seq_count=i % 16384)
            for i in range(n)]


def frames_with_idle(spec, packets, lead_in: int, tail: int, split: int | None = None, n_idle_mid: int = 0):
    """TM frames: ``lead_in`` idle frames, packets[:split], ``n_idle_mid`` idle frames, the rest,
    ``tail`` idle frames. Returns (frames, index of the first frame of the middle idle run)."""
    from ..framing.packets import TMPacketizer  # noqa: PLC0415
    pz = TMPacketizer(spec)
    st = pz.initial_state()
    frames = []
    for _ in range(lead_in):
        out, st = pz.idle_frame(st)
        frames += out
    parts = [packets] if split is None else [packets[:split], packets[split:]]
    mid = None
    for j, part in enumerate(parts):
        out, st = pz.push(part, st)
        frames += out
        out, st = pz.flush(st)
        frames += out
        if j == 0 and split is not None:
            mid = len(frames)
            for _ in range(n_idle_mid):
                out, st = pz.idle_frame(st)
                frames += out
    for _ in range(tail):
        out, st = pz.idle_frame(st)
        frames += out
    return frames, mid


def generate_scppm_pass(spec: SCPPMPassSpec) -> GeneratedPass:
    """Generate the time tags of an SCPPM pass (see the module docstring)."""
    from ..fec.scppm import SCPPMTransmitter, attach_asm, slice_blocks  # noqa: PLC0415
    from ..framing.bits import unpack_bytes  # noqa: PLC0415
    from ..framing.tm import TMFrameSpec  # noqa: PLC0415
    from ..sync.timetags import TimeTagConfig, simulate_time_tags  # noqa: PLC0415

    rng = np.random.default_rng(spec.seed)
    code = spec.code()
    tm = TMFrameSpec(frame_len=spec.frame_len, scid=spec.scid, vcid=spec.vcid)
    packets = make_packets(spec.n_packets, spec.packet_len, rng)
    T = float(spec.slot_width_ps)
    spc = code.slots_per_codeword
    frame_bits = 32 + tm.n_bits
    split = n_mid = None
    if spec.cloud_ms > 0:
        split = max(1, int(round(spec.n_packets * spec.cloud_at)))
        # idle frames covering: 2 frames to close the codeword of the last data frame, the cloud,
        # then slot-clock re-acquisition + codeword sync + frame-sync SEARCH/CHECK (~4 codewords),
        # and the codewords a channel interleaver spreads over the cloud on either side
        cw_ps = spc * T
        spread = 2 * math.ceil(code.interleaver_delay / code.S)
        n_mid = 2 + math.ceil((spec.cloud_ms * 1e9 + (6 + spread) * cw_ps) * code.k / (cw_ps * frame_bits)) + 2
    frames, mid = frames_with_idle(tm, packets, spec.lead_in, spec.tail, split, n_mid or 0)
    bits = np.stack([unpack_bytes(f) for f in frames])
    u = slice_blocks(attach_asm(bits).reshape(-1), code.k)
    tx = SCPPMTransmitter(code)
    x = np.concatenate([tx.modulate(u), tx.flush()]) if code.interleaver_rows > 1 else tx.modulate(u)
    cfg = dict(slot_width_ps=T, clock_offset_ppm=spec.clock_offset_ppm, drift_ppm_per_s=spec.drift_ppm_per_s,
               jitter_rms_ps=spec.jitter_rms_ps, efficiency=spec.efficiency,
               dark_count_rate_hz=spec.dark_count_rate_hz, dead_time_ps=spec.dead_time_ps,
               n_channels=spec.n_channels, t0_ps=spec.t0_ps, channel_delays_ps=spec.channel_delays_ps)
    cloud = None
    if split is not None:
        # the cloud starts two frames into the middle idle run (receiver time), and with a channel
        # interleaver ceil(delay / S) codewords later still: the last data codeword's symbols are
        # spread that far forward and must all arrive before the cloud (tests/test_sim_review.py)
        tc = TimeTagConfig(**cfg)
        start_slot = ((mid + 2) * frame_bits // code.k + 1 + math.ceil(code.interleaver_delay / code.S)) * spc
        a = float(tc.rx_time(start_slot * T))
        cloud = (a, a + spec.cloud_ms * 1e9)
        cfg["gaps"] = (cloud,)
    tags = simulate_time_tags(x, spec.ns, spec.nb, rng, TimeTagConfig(**cfg))
    data_frames = sum(1 for f in frames if (f[4] & 0x07) << 8 | f[5] != 0x7FE)
    meta = spec.link_meta()
    return GeneratedPass(t_ps=tags.t_ps, channel=tags.channel, meta=meta, packets=packets,
                         payload_sha256=payload_sha256(packets), n_frames=len(frames), n_data_frames=data_frames,
                         n_codewords=int(u.shape[0]), cloud_ps=cloud, generator=spec.generator_meta())


@dataclass(frozen=True)
class DPSKPassSpec:
    """A generated DPSK sample pass: ``link`` (a dict of :class:`modem.sample_receiver.DPSKLink`
    fields, simulation-only ``ppm``/``phase`` included), the payload, and the channel.

    n_packets, packet_len, lead_in, tail : payload and idle frames as for :class:`SCPPMPassSpec`.
    scint_index, coherence_s : log-normal scintillation of the received intensity (0 = none),
        applied to the optical field before the pre-amplified balanced receiver.
    lead_slots : slots of silence before the first burst.   seed : everything random.
    """

    link: dict = field(default_factory=dict)
    n_packets: int = 12
    packet_len: tuple = (40, 200)
    lead_in: int = 5
    tail: int = 2
    scint_index: float = 0.0
    coherence_s: float = 1e-3
    lead_slots: int = 1000
    seed: int = 1
    description: str = ""

    def __post_init__(self):
        _check_payload("DPSKPassSpec", self)
        v = self.lead_slots
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ConfigError(f"DPSKPassSpec: lead_slots must be an integer >= 0, got lead_slots={v!r}")
        v = self.scint_index
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not (math.isfinite(float(v)) and v >= 0):
            raise ConfigError(f"DPSKPassSpec: scint_index must be finite and >= 0 (0 = no fading), "
                              f"got scint_index={v!r}")


@dataclass
class GeneratedSamples:
    samples: np.ndarray
    meta: dict
    sample_rate: float
    packets: list
    payload_sha256: str
    n_frames: int
    n_fec_frames: int
    adc_lsb: float | None
    bursts: list
    generator: dict


def _scintillation(spec: "DPSKPassSpec"):
    """The spec's log-normal scintillation model (None without fading)."""
    from ..channel.fading import LognormalScintillation  # noqa: PLC0415
    return LognormalScintillation(spec.scint_index, spec.coherence_s) if spec.scint_index > 0 else None


def _generator_meta(spec: "DPSKPassSpec") -> dict:
    return {"n_packets": spec.n_packets, "packet_len": list(spec.packet_len), "lead_in": spec.lead_in,
            "tail": spec.tail, "scint_index": spec.scint_index, "coherence_s": spec.coherence_s,
            "lead_slots": spec.lead_slots, "seed": spec.seed}


def generate_dpsk_pass(spec: DPSKPassSpec) -> GeneratedSamples:
    """DPSK + DVB-S2 samples (burst mode or continuous, any channel interleaver depth) with
    scintillation; a link dict with ``"chain": "scppm-apd"`` generates SCPPM-over-APD samples instead.

    The chain is :func:`modem.sample_receiver.dpsk_transmit_frames` with its ``scintillation``
    input: the optical field multiplied by ``sqrt(I(t))``, ``I`` a unit-mean log-normal
    scintillation sampled at every occupied slot time.
    """
    from ..sample_receiver import DPSKLink, dpsk_transmit_frames  # noqa: PLC0415

    if spec.link.get("chain") == "scppm-apd":
        return _generate_apd_pass(spec)
    link = DPSKLink.from_dict(dict(spec.link))
    rng = np.random.default_rng(spec.seed)
    packets = make_packets(spec.n_packets, spec.packet_len, rng)
    frames, _ = frames_with_idle(link.spec, packets, spec.lead_in, spec.tail)
    y, wire = dpsk_transmit_frames(frames, link, rng, lead_slots=int(spec.lead_slots), tail_slots=64,
                                   return_bits=True, scintillation=_scintillation(spec))
    n_bits = wire.size
    lsb = link.clock.lsb if link.adc_bits is not None else None
    # bursts as (first sample, samples) annotations
    fmt = link.burst_format
    period = fmt.divider * fmt.burst_bits if fmt.divider > 1 else None
    bursts = []
    if period:
        n_b = -(-n_bits // fmt.burst_bits)
        for b in range(n_b):
            s0 = round((int(spec.lead_slots) + b * period) * link.sps)
            bursts.append((int(s0), int(round(fmt.burst_bits * link.sps))))
    # nominal positions (sample clock without its offset), clipped to the recording
    bursts = [(s0, min(n, y.size - s0)) for s0, n in bursts if s0 < y.size]
    return GeneratedSamples(samples=y, meta=link.to_dict(), sample_rate=float(link.sample_rate_hz), packets=packets,
                            payload_sha256=payload_sha256(packets), n_frames=len(frames),
                            n_fec_frames=int(wire.shape[0]), adc_lsb=lsb, bursts=bursts,
                            generator=_generator_meta(spec))


def _generate_apd_pass(spec: DPSKPassSpec) -> GeneratedSamples:
    """SCPPM over an APD: :func:`modem.sample_receiver.scppm_apd_transmit` with its
    ``scintillation`` input (the signal photoelectrons of every pulse scaled by ``I(t)``,
    background unaffected)."""
    from ..sample_receiver import SCPPMAPDLink, scppm_apd_transmit  # noqa: PLC0415

    link = SCPPMAPDLink.from_dict(dict(spec.link))
    rng = np.random.default_rng(spec.seed)
    packets = make_packets(spec.n_packets, spec.packet_len, rng)
    frames, _ = frames_with_idle(link.spec, packets, spec.lead_in, spec.tail)
    y = scppm_apd_transmit(frames, link, rng, lead_slots=int(spec.lead_slots), tail_slots=64,
                           scintillation=_scintillation(spec))
    n_cw = len(frames) and -(-len(frames) * (32 + link.spec.n_bits) // link.code.k)
    return GeneratedSamples(samples=y, meta=link.to_dict(), sample_rate=float(link.sample_rate_hz), packets=packets,
                            payload_sha256=payload_sha256(packets), n_frames=len(frames), n_fec_frames=int(n_cw),
                            adc_lsb=link.clock.lsb if link.adc_bits is not None else None, bursts=[],
                            generator=_generator_meta(spec))


def write_samples(g: GeneratedSamples, path, description: str = "") -> str:
    """Write a generated sample pass as SigMF (ADC codes as ri8 / ri16_le when the link has an ADC)."""
    from .sigmf_io import write_sigmf  # noqa: PLC0415
    ann = [(s0, n, {"core:label": "burst"}) for s0, n in g.bursts]
    return write_sigmf(path, g.samples, g.meta, g.sample_rate, description=description, annotations=ann,
                       adc_lsb=g.adc_lsb)


# --------------------------------------------------------------------------------------------------
#: generator presets of the shipped captures (captures/manifest.json lists their files and hashes)
PRESETS = {
    # 16-PPM SNSPD pass: 4-pixel array, 80 % efficiency, 10 kHz darks/pixel, 20 ns dead time, 50 ps
    # jitter, +120 ppm clock offset drifting 40 ppm/s, a 1 ms cloud halfway through
    "snspd16": SCPPMPassSpec(M=16, rate="1/2", slot_width_ps=1000.0, ns=3.0, nb=0.02, frame_len=1115,
                             n_packets=40, packet_len=(60, 600), lead_in=5, tail=3, cloud_ms=1.0, cloud_at=0.5,
                             seed=16, description="16-PPM SCPPM r1/2 SNSPD pass, 1 ms cloud"),
    # 128-PPM deep-space pass: high background (detected nb 0.10 per slot: ~4x more background than
    # signal photons), 16-pixel array at 50 % efficiency, 2.5 detected photons per pulse
    "deepspace128": SCPPMPassSpec(M=128, rate="1/2", slot_width_ps=1000.0, ns=5.0, nb=0.2, frame_len=223,
                                  n_packets=24, packet_len=(40, 200), lead_in=8, tail=3, efficiency=0.5,
                                  dark_count_rate_hz=1e5, dead_time_ps=10000.0, n_channels=16,
                                  clock_offset_ppm=-35.0, drift_ppm_per_s=5.0, seed=128,
                                  extra={"clock_acq_max_guard_ratio": 0.9},
                                  description="128-PPM SCPPM r1/2 deep-space pass, high background"),
}

#: sample presets. dpsk_burst (shipped): DVB-S2 short 1/2, burst mode (duty 1/4, 256-slot bursts), 20 photons per
#: bit, thermal noise, -150 ppm sample clock, 8-bit ADC, log-normal scintillation SI 0.1 with a
#: 20 us coherence time (time-compressed so that the 0.3 ms recording sees several fades)
DPSK_PRESETS = {
    # SCPPM 16-PPM over an APD (gain 50, k 0.02, 20 e- thermal noise, 12-bit ADC), scintillation
    "apd16": DPSKPassSpec(link=dict(chain="scppm-apd", M=16, rate="1/2", frame_len=1115, scid=0x42, vcid=1,
                                    ns=8.0, nb=0.1, thermal_sigma=20.0, adc_bits=12, full_scale=4000.0,
                                    ppm=150.0, phase=0.37),
                          n_packets=6, packet_len=(60, 600), lead_in=3, tail=2, scint_index=0.05,
                          coherence_s=5e-5, seed=3, description="16-PPM SCPPM r1/2 over an APD, scintillation"),
    "dpsk_burst": DPSKPassSpec(link=dict(frame="short", rate="1/2", frame_len=256, scid=0x42, vcid=1, divider=4,
                                         burst_bits=256, ppb=20.0, thermal_sigma=0.5, ppm=-150.0, phase=0.3,
                                         adc_bits=8, full_scale=64.0),
                               n_packets=12, packet_len=(40, 200), lead_in=8, tail=5, scint_index=0.1,
                               coherence_s=2e-5, seed=2,
                               description="DPSK + DVB-S2 short 1/2, burst mode 1/4, scintillation SI 0.1"),
}


def write_pass(g: GeneratedPass, path, fmt: str | None = None, description: str = "") -> str:
    """Write a generated time-tag pass as HDF5 (``.h5``) or PTU T2 (``.ptu``); returns the format."""
    from . import write_ptu_t2, write_timetags_hdf5  # noqa: PLC0415
    p = str(path)
    fmt = fmt or ("ptu" if p.endswith(".ptu") else "hdf5")
    if fmt == "ptu":
        write_ptu_t2(p, g.t_ps, g.channel, g.meta, comment=description)
    elif fmt == "hdf5":
        write_timetags_hdf5(p, g.t_ps, g.channel, g.meta, description=description)
    else:
        raise ConfigError(f"write_pass: format must be 'ptu' or 'hdf5', got {fmt!r}")
    return fmt


def manifest_entry(g: GeneratedPass, files: list, spec: SCPPMPassSpec) -> dict:
    """The manifest record of a generated pass (what a decode must reproduce)."""
    return {"files": files, "kind": "timetags", "link": g.meta, "generator": g.generator,
            "description": spec.description, "tags": int(g.t_ps.size), "frames_sent": g.n_frames,
            "data_frames_sent": g.n_data_frames, "codewords_sent": g.n_codewords, "packets": len(g.packets),
            "payload_octets": int(sum(len(p) for p in g.packets)), "payload_sha256": g.payload_sha256,
            "cloud_ps": list(g.cloud_ps) if g.cloud_ps else None}


def register(subparsers) -> None:
    """Add ``modem capture generate`` to the CLI."""
    cap = subparsers.add_parser("capture", help="capture tools: generate realistic recordings, measure channel delays",
                                description="Capture tools.")
    sub = cap.add_subparsers(dest="capture_command", metavar="ACTION")
    sub.required = True
    g = sub.add_parser("generate", help="write a simulated pass (SCPPM time tags as HDF5/PTU T2, or APD/DPSK "
                                        "samples as SigMF)",
                       description="Payload (CCSDS space packets -> TM frames) through the SCPPM transmitter "
                                   "and the SNSPD time-tag model (efficiency, darks, dead time, jitter, clock "
                                   "offset/drift, background, a cloud) into HDF5 / PTU T2 files; or, with the "
                                   "presets apd16 / dpsk_burst, through the SCPPM-APD or DVB-S2 DPSK transmitter "
                                   "(burst mode, scintillation, ADC) into a SigMF recording. Prints the "
                                   "manifest entry (payload SHA-256) as JSON. The SNSPD options apply to the "
                                   "time-tag presets; --packets, --scale and --seed to all.")
    g.add_argument("out", nargs="+", metavar="FILE", help="output file(s): .h5 (HDF5) and/or .ptu (PTU T2); "
                                                          "for the DPSK preset a SigMF stem or .sigmf-meta")
    g.add_argument("--preset", choices=sorted(PRESETS) + sorted(DPSK_PRESETS), default="snspd16",
                   help="start from a preset (default snspd16)")
    g.add_argument("--order", "-M", type=int, help="PPM order")
    g.add_argument("--rate", help="SCPPM rate")
    g.add_argument("--interleaver-rows", type=int, help="SCPPM channel interleaver rows N (1 = none)")
    g.add_argument("--interleaver-shift", type=int, help="SCPPM channel interleaver shift B (symbols)")
    g.add_argument("--repetition", type=int, help="SCPPM symbol repetition q_d")
    g.add_argument("--ns", type=float, help="incident signal photons per pulse")
    g.add_argument("--nb", type=float, help="incident background photons per slot")
    g.add_argument("--slot-ps", type=float, help="slot width (ps)")
    g.add_argument("--packets", type=int, help="space packets in the payload")
    g.add_argument("--scale", type=int, default=1, help="multiply the preset's packets by this (default 1)")
    g.add_argument("--cloud-ms", type=float, help="cloud duration in ms (0 = none)")
    g.add_argument("--efficiency", type=float)
    g.add_argument("--dark-hz", type=float, help="dark counts per second per pixel")
    g.add_argument("--dead-ps", type=float, help="dead time per pixel (ps)")
    g.add_argument("--pixels", type=int, help="SNSPD pixels (channels)")
    g.add_argument("--jitter-ps", type=float)
    g.add_argument("--offset-ppm", type=float)
    g.add_argument("--drift-ppm-s", type=float)
    g.add_argument("--channel-delays-ps", type=_delay_list, metavar="D0,D1,...",
                   help="cable delay (ps) of each SNSPD channel, one per pixel (an uncalibrated array)")
    g.add_argument("--seed", type=int)
    g.set_defaults(_run=_run_generate)
    d = sub.add_parser("delays", help="measure the per-channel delays of an SNSPD time-tag capture",
                       description="Measure each detector channel's delay relative to the busiest channel from "
                                   "photons of one pulse detected on two channels (the tallest tooth of the "
                                   "histogram of tag differences), and print them as JSON with the --param "
                                   "that applies them (modem decode --param channel_delays_ps=...). The raw "
                                   "tags are measured; delays stored in the file are ignored.")
    d.add_argument("capture", metavar="CAPTURE")
    d.add_argument("--tags", type=int, default=None, metavar="N",
                   help="tags per measuring window (default: as modem decode --deskew auto)")
    d.add_argument("--windows", type=int, default=32, metavar="N",
                   help="windows measured before giving up when no channel resolves (default 32)")
    d.add_argument("--stride", type=int, default=1, metavar="K",
                   help="measure every K-th window until the link is found (long dark lead-ins; default 1)")
    d.add_argument("--max-delay-ps", type=float, default=None,
                   help="largest delay difference searched (default max(64 slots, 20 ns))")
    d.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="set / override a link parameter (JSON value), as for modem decode")
    d.set_defaults(_run=_run_delays)


def _delay_list(text: str) -> tuple:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers of ps, got {text!r}") from None


def _run_delays(args) -> int:
    import json  # noqa: PLC0415
    from ..cliargs import parse_key_values  # noqa: PLC0415
    from ..offline import measure_channel_delays  # noqa: PLC0415
    est = measure_channel_delays(args.capture, parse_key_values(args.param) or None,
                                 max_tags=args.tags, max_delay_ps=args.max_delay_ps,
                                 max_windows=args.windows, stride=args.stride)
    print(json.dumps({**est.to_json(), "param": est.as_param()}, indent=2))
    return 0


#: ``capture generate`` options of the time-tag presets only (argparse dests)
_TIME_TAG_OPTIONS = ("order", "rate", "interleaver_rows", "interleaver_shift", "repetition", "ns", "nb", "slot_ps",
                     "cloud_ms", "efficiency", "dark_hz", "dead_ps", "pixels", "jitter_ps", "offset_ppm",
                     "drift_ppm_s", "channel_delays_ps")


def _run_generate(args) -> int:
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415
    from dataclasses import replace  # noqa: PLC0415
    if args.preset in DPSK_PRESETS:
        from dataclasses import replace as _replace  # noqa: PLC0415
        given = [f"--{a.replace('_', '-')}" for a in _TIME_TAG_OPTIONS if getattr(args, a) is not None]
        if given:
            raise ConfigError(f"capture generate: {', '.join(given)} apply to the time-tag presets "
                              f"({', '.join(sorted(PRESETS))}), not to --preset {args.preset} (its link is fixed)")
        ds = DPSK_PRESETS[args.preset]
        kw = {"seed": args.seed} if args.seed is not None else {}
        if args.packets is not None or args.scale != 1:
            kw["n_packets"] = args.packets if args.packets is not None else ds.n_packets * args.scale
        ds = _replace(ds, **kw)
        if len(args.out) != 1:
            raise ConfigError("capture generate: the DPSK preset writes one SigMF recording (give one stem)")
        gs = generate_dpsk_pass(ds)
        meta_path = write_samples(gs, args.out[0], description=ds.description)
        entry = {"files": [os.path.basename(meta_path), os.path.basename(meta_path)[:-len("meta")] + "data"],
                 "kind": "samples", "link": gs.meta, "generator": gs.generator, "description": ds.description,
                 "samples": int(gs.samples.size), "sample_rate": gs.sample_rate, "frames_sent": gs.n_frames,
                 "fec_frames_sent": gs.n_fec_frames, "packets": len(gs.packets),
                 "payload_octets": int(sum(len(p) for p in gs.packets)), "payload_sha256": gs.payload_sha256}
        print(json.dumps(entry, indent=2))
        return 0
    spec = PRESETS[args.preset]
    names = {"order": "M", "rate": "rate", "interleaver_rows": "interleaver_rows",
             "interleaver_shift": "interleaver_shift", "repetition": "repetition", "ns": "ns", "nb": "nb",
             "slot_ps": "slot_width_ps",
             "packets": "n_packets", "cloud_ms": "cloud_ms", "efficiency": "efficiency",
             "dark_hz": "dark_count_rate_hz", "dead_ps": "dead_time_ps", "pixels": "n_channels",
             "jitter_ps": "jitter_rms_ps", "offset_ppm": "clock_offset_ppm", "drift_ppm_s": "drift_ppm_per_s",
             "channel_delays_ps": "channel_delays_ps", "seed": "seed"}
    kw = {f: getattr(args, a) for a, f in names.items() if getattr(args, a) is not None}
    if args.scale != 1:
        kw.setdefault("n_packets", spec.n_packets * args.scale)
    spec = replace(spec, **kw)
    for p in args.out:                        # before the (long) generation and any file written
        if not p.endswith((".h5", ".hdf5", ".ptu")):
            raise ConfigError(f"capture generate: output must end in .h5, .hdf5 or .ptu, got {p!r}")
    gp = generate_scppm_pass(spec)
    for p in args.out:
        write_pass(gp, p, description=spec.description)
    entry = manifest_entry(gp, [os.path.basename(p) for p in args.out], spec)
    print(json.dumps(entry, indent=2))
    return 0
