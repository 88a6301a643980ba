# SPDX-License-Identifier: Apache-2.0
"""SNSPD photon time-tag simulator: transmitted PPM slot pulses -> time-tagger output.

A time tagger reports every detector click as ``(t_ps, channel)``: an int64 time in picoseconds of
the *receiver* clock and a detector channel id. This module turns the slot-occupancy stream of a
transmitter (e.g. ``SCPPMTransmitter(code).modulate(u)``, shape ``(F, slots_per_codeword)`` uint8)
into such a stream, with the impairments a slot-clock recovery must survive.

Model (all times in ps)
-----------------------
* **Transmitter clock.** Transmitter slot ``s`` (global index, 0-based) occupies transmitter time
  ``[s*T, (s+1)*T)`` with ``T = slot_width_ps``; a pulse is centred in its slot, ``tau = (s+0.5)*T``.
  The receiver sees transmitter time ``tau`` at receiver time
  ``t = t0_ps + tau*(1 + a) + 0.5*b*tau**2`` with ``a = clock_offset_ppm*1e-6`` and
  ``b = drift_ppm_per_s*1e-6 / 1e12`` (per ps): the fractional frequency offset is ``a`` at
  ``tau = 0`` and changes linearly by ``drift_ppm_per_s`` ppm per second (Doppler rate, oscillator
  ageing). Positive ppm = the transmitter's slots arrive *longer* than nominal.
* **Signal.** A pulsed slot yields ``Poisson(efficiency*ns)`` photons at its centre, each delayed by
  Gaussian timing jitter ``N(0, jitter_rms_ps**2)`` (laser pulse width + detector + tagger jitter).
* **Background.** ``Poisson(efficiency*nb)`` photons per slot (every slot of the simulated span,
  pulsed or not), uniform in time.
* **Channels.** Every photon goes to one of ``n_channels`` detectors (uniformly or by
  ``channel_weights``), e.g. an array of SNSPD pixels behind one aperture.
* **Channel delays** (``channel_delays_ps``, one per channel): the cable and readout delay of each
  channel, added to every click of that channel (signal, background and dark counts alike) before
  the dropouts and the dead time; the tagger streams the delayed times merged and sorted.
  :class:`modem.sync.deskew.ChannelDeskew` undoes it.
* **Dark counts.** ``dark_count_rate_hz`` per channel, uniform over the whole simulated receiver time
  span, *including* gaps (darks do not come through the aperture).
* **Gaps** (``gaps``: receiver-time intervals ``[start, end)``): signal and background photons are
  removed (a cloud, a pointing loss); dark counts remain. **Dropouts** (``dropouts``): every tag is
  removed (tagger buffer overflow, a time range missing from a capture).
* **Dead time.** Per channel, non-paralyzable: a click less than ``dead_time_ps`` after the previous
  *kept* click of the same channel is lost (applied after merging signal, background and darks).
* **Quantisation.** Times are floored to ``resolution_ps`` (>= 1) and stored as int64 ps (a time
  outside int64 is a ConfigError). They are computed in float64: beyond 2**53 ps (~2.5 h from 0)
  their step is 2, 4, 8 ... ps.

Long gaps cost nothing: pass several segments ``[(first_slot, pulses), ...]``; slots between the
segments are never simulated (the transmitter keeps its clock running, nothing is received), so a
200 ms cloud between two bursts of codewords costs only its dark counts.

Output (:class:`TimeTags`): ``t_ps`` int64 sorted non-decreasing (all channels merged, the order a
tagger streams them), ``channel`` int16 of the same length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np

from ..errors import ConfigError, ShapeError

__all__ = ["TimeTagConfig", "TimeTags", "simulate_time_tags", "apply_channel_dead_time", "merge_channels"]


def _finite(name: str, value, lo=None, lo_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise ConfigError(f"TimeTagConfig: {name} must be a finite real number, got {value!r}")
    v = float(value)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        rel = ">" if lo_open else ">="
        raise ConfigError(f"TimeTagConfig: {name} must be {rel} {lo}, got {value!r}")
    return v


def _intervals(name: str, value) -> tuple:
    out = []
    for iv in value:
        try:
            a, b = iv
            a, b = float(a), float(b)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"TimeTagConfig: {name} must be (start_ps, end_ps) pairs, got {iv!r}") from exc
        if not (math.isfinite(a) and math.isfinite(b)) or b < a:
            raise ConfigError(f"TimeTagConfig: {name} interval must be finite with end >= start, got {iv!r}")
        out.append((a, b))
    return tuple(out)


@dataclass(frozen=True)
class TimeTagConfig:
    """Link and detector parameters of :func:`simulate_time_tags` (see the module docstring).

    Attributes
    ----------
    slot_width_ps : nominal slot width T (> 0), e.g. 500.0 or 1000.0.
    clock_offset_ppm : transmitter clock offset at tau = 0 (ppm, |.| < 1e4).
    drift_ppm_per_s : linear change of the offset (ppm per second).
    jitter_rms_ps : Gaussian timing jitter of every signal photon (>= 0).
    efficiency : detection efficiency in (0, 1], thins signal and background.
    dark_count_rate_hz : dark counts per second per channel (>= 0).
    dead_time_ps : non-paralyzable dead time per channel (>= 0).
    n_channels : number of detector channels (1..32767).
    channel_weights : None (uniform) or n_channels non-negative weights (normalised here).
    channel_delays_ps : None (all 0) or n_channels finite delays (ps) added to each channel's clicks.
    gaps : receiver-time intervals [start_ps, end_ps) with no signal or background.
    dropouts : receiver-time intervals [start_ps, end_ps) with no tags at all.
    t0_ps : receiver time of transmitter slot 0's leading edge.
    resolution_ps : tagger resolution (>= 1); times are floored to a multiple of it.
    """

    slot_width_ps: float = 1000.0
    clock_offset_ppm: float = 0.0
    drift_ppm_per_s: float = 0.0
    jitter_rms_ps: float = 0.0
    efficiency: float = 1.0
    dark_count_rate_hz: float = 0.0
    dead_time_ps: float = 0.0
    n_channels: int = 1
    channel_weights: tuple | None = None
    channel_delays_ps: tuple | None = None
    gaps: tuple = field(default_factory=tuple)
    dropouts: tuple = field(default_factory=tuple)
    t0_ps: float = 0.0
    resolution_ps: int = 1

    def __post_init__(self):
        _finite("slot_width_ps", self.slot_width_ps, 0.0, lo_open=True)
        if abs(_finite("clock_offset_ppm", self.clock_offset_ppm)) >= 1e4:
            raise ConfigError(f"TimeTagConfig: |clock_offset_ppm| must be < 1e4, got {self.clock_offset_ppm!r}")
        _finite("drift_ppm_per_s", self.drift_ppm_per_s)
        _finite("jitter_rms_ps", self.jitter_rms_ps, 0.0)
        eff = _finite("efficiency", self.efficiency, 0.0, lo_open=True)
        if eff > 1.0:
            raise ConfigError(f"TimeTagConfig: efficiency must be in (0, 1], got {self.efficiency!r}")
        _finite("dark_count_rate_hz", self.dark_count_rate_hz, 0.0)
        _finite("dead_time_ps", self.dead_time_ps, 0.0)
        _finite("t0_ps", self.t0_ps)
        n = self.n_channels
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 32767:
            raise ConfigError(f"TimeTagConfig: n_channels must be an integer in 1..32767, got {n!r}")
        r = self.resolution_ps
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
            raise ConfigError(f"TimeTagConfig: resolution_ps must be an integer >= 1, got {r!r}")
        if self.channel_weights is not None:
            w = np.asarray(self.channel_weights, dtype=np.float64)
            if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ConfigError(f"TimeTagConfig: channel_weights must be {n} finite non-negative weights "
                                  f"with a positive sum, got {self.channel_weights!r}")
            object.__setattr__(self, "channel_weights", tuple(float(x) for x in w / w.sum()))
        if self.channel_delays_ps is not None:
            try:
                d = np.asarray(self.channel_delays_ps, dtype=np.float64)
            except (TypeError, ValueError):
                d = None
            if d is None or d.shape != (n,) or not np.all(np.isfinite(d)):
                raise ConfigError(f"TimeTagConfig: channel_delays_ps must be {n} finite delays in ps, got "
                                  f"{self.channel_delays_ps!r}")
            object.__setattr__(self, "channel_delays_ps", tuple(float(x) for x in d))
        object.__setattr__(self, "gaps", _intervals("gaps", self.gaps))
        object.__setattr__(self, "dropouts", _intervals("dropouts", self.dropouts))

    def rx_time(self, tau_ps) -> np.ndarray:
        """Receiver time (float64 ps) of transmitter time ``tau_ps`` (float64 ps)."""
        tau = np.asarray(tau_ps, dtype=np.float64)
        a = self.clock_offset_ppm * 1e-6
        b = self.drift_ppm_per_s * 1e-18
        return self.t0_ps + tau * (1.0 + a) + 0.5 * b * tau * tau

    def slot_period_at(self, tau_ps) -> np.ndarray:
        """Instantaneous slot period (ps) seen by the receiver at transmitter time ``tau_ps``."""
        tau = np.asarray(tau_ps, dtype=np.float64)
        return self.slot_width_ps * (1.0 + self.clock_offset_ppm * 1e-6 + self.drift_ppm_per_s * 1e-18 * tau)


@dataclass
class TimeTags:
    """Detector clicks: ``t_ps`` int64 (n,) non-decreasing, ``channel`` int16 (n,)."""

    t_ps: np.ndarray
    channel: np.ndarray

    def __len__(self) -> int:
        return int(self.t_ps.shape[0])

    def __getitem__(self, idx) -> "TimeTags":
        return TimeTags(self.t_ps[idx], self.channel[idx])


@numba.njit(cache=True, nogil=True)
def _dead_time_keep(t, ch, n_ch, dead):  # pragma: no cover - compiled
    """keep[i] = tag i is at least `dead` after the previous kept tag of its channel (t sorted)."""
    keep = np.zeros(t.shape[0], dtype=np.bool_)
    ready = np.full(n_ch, np.iinfo(np.int64).min, dtype=np.int64)
    for i in range(t.shape[0]):
        c = ch[i]
        if t[i] >= ready[c]:
            keep[i] = True
            ready[c] = t[i] + dead
    return keep


def apply_channel_dead_time(tags: TimeTags, dead_time_ps: float, n_channels: int | None = None) -> TimeTags:
    """Non-paralyzable dead time per channel on time-sorted tags; returns the kept tags.

    A tag is kept when it comes at least ``dead_time_ps`` (rounded up to whole ps) after the previous
    kept tag of the same channel. Channel ids must lie in ``[0, n_channels)`` (default: the largest
    id + 1); ``t_ps`` and ``channel`` of one length.
    """
    t = np.ascontiguousarray(tags.t_ps, dtype=np.int64)
    ch = np.ascontiguousarray(tags.channel)
    if t.ndim != 1 or ch.shape != t.shape:
        raise ShapeError(f"apply_channel_dead_time: t_ps and channel must be 1-D of one length, got shapes "
                         f"{t.shape} and {ch.shape}")
    if t.size and np.any(np.diff(t) < 0):
        i = int(np.flatnonzero(np.diff(t) < 0)[0]) + 1
        raise ShapeError(f"apply_channel_dead_time: t_ps must be non-decreasing, t_ps[{i}]={t[i]} < "
                         f"t_ps[{i - 1}]={t[i - 1]}")
    if dead_time_ps <= 0 or t.size == 0:
        return TimeTags(t.copy(), ch.copy())
    if ch.size and ch.min() < 0:
        raise ShapeError(f"apply_channel_dead_time: channel ids must be >= 0, found {int(ch.min())}")
    n_ch = int(ch.max()) + 1 if n_channels is None else int(n_channels)
    if int(ch.max()) >= n_ch:      # the compiled loop indexes a table of n_ch channels unchecked
        raise ShapeError(f"apply_channel_dead_time: channel id {int(ch.max())} found, but n_channels={n_ch}")
    keep = _dead_time_keep(t, ch.astype(np.int64), n_ch, np.int64(math.ceil(dead_time_ps)))
    return TimeTags(t[keep], ch[keep])


def merge_channels(per_channel_t_ps) -> TimeTags:
    """Merge per-channel tag streams (a list of int64 arrays, list index = channel id) into one
    time-sorted :class:`TimeTags` (stable: equal times keep channel order)."""
    ts, chs = [], []
    for c, t in enumerate(per_channel_t_ps):
        t = np.asarray(t)
        if t.ndim != 1 or (t.size and not np.issubdtype(t.dtype, np.integer)):
            raise ShapeError(f"merge_channels: channel {c} must be a 1-D integer array of ps, got "
                             f"dtype {t.dtype}, shape {t.shape}")
        ts.append(t.astype(np.int64))
        chs.append(np.full(t.size, c, dtype=np.int16))
    if not ts:
        return TimeTags(np.zeros(0, np.int64), np.zeros(0, np.int16))
    t = np.concatenate(ts)
    ch = np.concatenate(chs)
    order = np.argsort(t, kind="stable")
    return TimeTags(t[order], ch[order])


def _in_intervals(t: np.ndarray, intervals) -> np.ndarray:
    mask = np.zeros(t.shape, dtype=bool)
    for a, b in intervals:
        mask |= (t >= a) & (t < b)
    return mask


def _segments(pulses, first_slot) -> list:
    if isinstance(pulses, (list, tuple)) and first_slot is None:
        segs = list(pulses)
    else:
        segs = [(0 if first_slot is None else first_slot, pulses)]
    out = []
    for k, seg in enumerate(segs):
        try:
            s0, p = seg
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"simulate_time_tags: segment {k} must be (first_slot, pulses), got {type(seg)}") from exc
        if isinstance(s0, bool) or not isinstance(s0, (int, np.integer)) or s0 < 0:
            raise ConfigError(f"simulate_time_tags: first_slot of segment {k} must be an integer >= 0, got {s0!r}")
        p = np.asarray(p)
        if p.ndim < 1:
            raise ShapeError(f"simulate_time_tags: pulses of segment {k} need a slot axis, got shape {p.shape}")
        if p.dtype == np.bool_:
            p = p.astype(np.uint8)
        if p.dtype != np.uint8:
            raise ShapeError(f"simulate_time_tags: pulses must be bool or uint8 0/1, got dtype {p.dtype}")
        if p.size and p.max() > 1:
            raise ShapeError(f"simulate_time_tags: pulses must hold 0/1, found {int(p.max())} in segment {k}")
        out.append((int(s0), p.reshape(-1)))
    order = sorted((k for k in range(len(out)) if out[k][1].size), key=lambda k: out[k][0])
    for a, b in zip(order, order[1:]):            # a transmitter slot is sent once
        if out[b][0] < out[a][0] + out[a][1].size:
            i, j = sorted((a, b))
            raise ConfigError(f"simulate_time_tags: segments {i} and {j} overlap: slots "
                              f"[{out[i][0]}, {out[i][0] + out[i][1].size}) and [{out[j][0]}, "
                              f"{out[j][0] + out[j][1].size})")
    return out


def simulate_time_tags(pulses, ns: float, nb: float, rng, config: TimeTagConfig,
                       first_slot: int | None = None) -> TimeTags:
    """Simulate the time-tagger output of a PPM slot stream.

    Parameters
    ----------
    pulses : array (..., n_slots) uint8/bool 0/1, or a list of segments ``[(first_slot, pulses), ...]``
        Transmitted slot occupancy; batch rows are consecutive in time (row-major flattening), so
        ``SCPPMTransmitter.modulate`` output is one continuous stream. A segment starts at global
        transmitter slot ``first_slot``; slots outside all segments are not transmitted/received;
        segments must not share slots (ConfigError).
    ns : mean signal photons per pulse (incident, before ``config.efficiency``), >= 0.
    nb : mean background photons per slot (incident), >= 0.
    rng : numpy Generator or int seed.
    config : :class:`TimeTagConfig`.
    first_slot : global slot index of ``pulses[..., 0]`` when ``pulses`` is an array (default 0).

    Returns
    -------
    TimeTags : ``t_ps`` int64 non-decreasing, ``channel`` int16.

    Notes
    -----
    Memory is O(number of photons) plus one pass over the pulse array; dark counts over a long gap
    cost ``dark_count_rate_hz * gap`` tags per channel.
    """
    if not isinstance(config, TimeTagConfig):
        raise ConfigError(f"simulate_time_tags: config must be a TimeTagConfig, got {config!r}")
    for name, v in (("ns", ns), ("nb", nb)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(v)) or v < 0:
            raise ConfigError(f"simulate_time_tags: {name} must be a finite number >= 0, got {v!r}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    segs = _segments(pulses, first_slot)
    T = float(config.slot_width_ps)
    eff = float(config.efficiency)
    times, spans = [], []
    for s0, p in segs:
        n = p.size
        if n == 0:
            continue
        # signal: Poisson photons per pulsed slot, at the slot centre, plus jitter
        idx = np.flatnonzero(p)
        k = gen.poisson(eff * ns, size=idx.size)
        tau_sig = (np.repeat(idx, k).astype(np.float64) + (s0 + 0.5)) * T
        # background: Poisson total over the segment, uniform in transmitter time
        n_bg = int(gen.poisson(eff * nb * n))
        tau_bg = (s0 + gen.random(n_bg) * n) * T
        t_sig = config.rx_time(tau_sig)
        if config.jitter_rms_ps > 0 and t_sig.size:
            t_sig += gen.normal(0.0, config.jitter_rms_ps, size=t_sig.size)
        times.append(t_sig)
        times.append(config.rx_time(tau_bg))
        spans.append((float(config.rx_time(s0 * T)), float(config.rx_time((s0 + n) * T))))
    t = np.concatenate(times) if times else np.zeros(0)
    if config.gaps and t.size:
        t = t[~_in_intervals(t, config.gaps)]
    if config.channel_weights is None:
        ch = gen.integers(0, config.n_channels, size=t.size, dtype=np.int16)
    else:
        ch = gen.choice(config.n_channels, size=t.size, p=np.asarray(config.channel_weights)).astype(np.int16)
    if config.dark_count_rate_hz > 0 and spans:
        lo = min(a for a, _ in spans)
        hi = max(b for _, b in spans)
        mean = config.dark_count_rate_hz * (hi - lo) * 1e-12
        n_dark = gen.poisson(mean, size=config.n_channels)
        t_dark = lo + gen.random(int(n_dark.sum())) * (hi - lo)
        ch_dark = np.repeat(np.arange(config.n_channels, dtype=np.int16), n_dark)
        t = np.concatenate([t, t_dark])
        ch = np.concatenate([ch, ch_dark])
    if config.channel_delays_ps is not None and t.size:
        t = t + np.asarray(config.channel_delays_ps)[ch]
    if config.dropouts and t.size:
        keep = ~_in_intervals(t, config.dropouts)
        t, ch = t[keep], ch[keep]
    res = int(config.resolution_ps)
    if t.size and not (-2.0 ** 63 <= t.min() and t.max() < 2.0 ** 63):
        bad = float(t.max()) if t.max() >= 2.0 ** 63 else float(t.min())
        raise ConfigError(f"simulate_time_tags: receiver time {bad!r} ps does not fit int64 ps "
                          f"(t0_ps={config.t0_ps!r}, span of the pulses)")
    ti = np.floor(t).astype(np.int64)
    if res > 1:
        ti -= ti % res
    order = np.argsort(ti, kind="stable")
    tags = TimeTags(ti[order], ch[order])
    if config.dead_time_ps > 0:
        tags = apply_channel_dead_time(tags, config.dead_time_ps, config.n_channels)
    return tags
