# SPDX-License-Identifier: Apache-2.0
"""Sample-domain front end for APD (PPM) and balanced-detector (DPSK) captures, streaming.

``stats, state = SampleFrontEnd(config).push(samples_chunk, state)``: real ADC samples at a few
samples per slot (a DPSK bit is one slot) -> matched filter -> slot timing recovery -> one statistic
per recovered slot, plus burst detection for burst-mode DPSK. All memory lives in
:class:`FrontEndState`; any chunking of a record gives bit-identical output (the arithmetic runs
sample by sample / slot by slot in the same order whatever the chunk boundaries).

Conventions (pinned here)
-------------------------
* Signal model: :mod:`modem.channel.apd`: a slot amplitude ``q_k`` times a peak-normalised
  Gaussian pulse of rms ``pulse_sigma`` slots centred at the slot centre, plus white noise.
* **Matched filter**: FIR ``g_j = h(j / sps) / sum_i h(i / sps)^2``, ``|j| <= D``, ``h`` the pulse shape;
  an isolated pulse of amplitude ``q`` gives ``z = q`` at its centre. White noise of variance
  ``s^2`` per sample leaves variance ``s^2 * noise_gain`` (``noise_gain = sum g^2``).
* **Timing recovery**: cubic-Lagrange interpolation of the MF output; an early-late detector
  ``e_k = (z_k - dc)(z(tau_k + T/2) - z(tau_k - T/2)) / pwr`` (``dc``, ``pwr``: running mean and
  power of ``z``), scaled by the Gaussian-pulse detector gain to a timing error in slots
  (``delta = -e / K_d``, ``K_d = exp(-1/(16 sigma^2)) / (2 sigma^2)``, clipped to +-1/2), drives a
  second-order (proportional + integral) loop of noise bandwidth ``loop_bw`` (B_L T, per slot,
  damping 1/sqrt(2)). The integral branch tracks the clock offset (type-2 loop: no steady-state
  phase error under a constant frequency offset; hundreds of ppm are a tiny per-slot step).
  The detector works for sparse PPM pulses and for bipolar DPSK outputs alike.
  Acquisition (measured, sps 4, pulse_sigma 0.25, |offset| <= 250 ppm): PPM at B_L T = 0.002 is
  centred within ~0.03 slot after 5000 slots (an initial phase near the half-slot hang-up point is
  the slow case); burst-mode DPSK at B_L T = 0.01 with 256-bit bursts learns the clock offset over
  the first two bursts (the second may open ~0.3 bit off and pull in), then stays within ~0.02 bit
  across the gaps. There is no gear shifting or feedforward frequency estimate yet.
* Output ``SlotStatistics.z[k]`` = MF output at the recovered centre of slot ``k``; ``t[k]`` its
  position in input samples (sample 0 of the record = 0.0); ``index[k]`` a running slot counter.
  The slot numbering starts at the first recovered slot; the codeword / frame position is found
  downstream (CSM / ASM correlation).
* **PPM soft metric** (APD, Gaussian approximation): ``z | empty ~ N(G nb, v0)``,
  ``z | pulse ~ N(G (ns+nb), v1)``, ``v = G^2 F n + noise`` (:func:`modem.channel.apd.apd_slot_moments`);
  the slot LLR ``lambda(z) = ln N(z; mean1, var1) - ln N(z; mean0, var0)`` (:func:`gaussian_slot_llr`)
  is, up to a per-symbol constant, ``ln P(z | pulse in slot s)``: the symbol metric of
  :class:`modem.fec.scppm.SCPPMDecoder` (:func:`ppm_symbol_metric` removes CSM and guard slots).
* **DPSK**: ``z[k] ~ D_k`` (balanced difference, bit 0 -> positive). :func:`dpsk_bit_llr` gives the
  Gaussian-moment LLR (positive = bit 0).
* **Burst detection** (burst-mode DPSK; ``burst_threshold`` set): slot ``k`` is *hot* when
  ``|z_k| > burst_threshold``. A burst opens after ``burst_confirm`` consecutive hot slots (start =
  the first of them) and closes after ``burst_hangover`` consecutive cold slots (end = the last hot
  slot, inclusive). The first bit of a burst has no phase reference and is normally cold, so the
  reported start is the first referenced bit. The per-slot ``in_burst`` flag rises when the burst is
  confirmed (``burst_confirm - 1`` slots after the reported start). With ``gate_timing`` the loop and the running
  ``dc``/``pwr`` update only inside bursts (between bursts the clock freewheels at its learnt rate).
* **Signal gate** (``signal_threshold`` set; loss of signal): a running mean of
  ``(z(tau) + z(tau + T/2)) / 2`` (of ``(z^2 + z(tau + T/2)^2) / 2`` with ``signal_square``, for
  bipolar DPSK outputs) with time constant ``signal_slots`` is updated on every slot: two points per
  slot make it nearly independent of the timing phase (a gate on ``z`` at a wrong phase would never
  open), its expectation is the slot amplitude mean times :meth:`FrontEndConfig.gate_gain` (mean of
  the squares times ``gate_gain(square=True)``). The loop and ``dc``/``pwr`` update only while it
  exceeds ``signal_threshold`` (for APD PPM e.g. ``gate_gain()`` times halfway between the
  empty-slot mean ``G nb`` and the signal mean ``G (nb + ns / (M + G))``).
  In a gap (clouds, dropped samples: zeros or noise) the clock then freewheels at its learnt rate
  instead of random-walking on noise, and re-locks at once. With the gate, the loop also waits for
  ``avg_slots`` updates of ``dc``/``pwr`` before its first step (a power estimate still near 0 would
  saturate the first errors and throw the frequency integrator off).
* **Feed-forward phase acquisition** (``acquire_slots`` A > 0): when the loop would run for the
  first time (signal gate open, inside a burst when gated), the MF output energy
  ``sum_j z(tau + phi + j T)^2`` over the next A slots is evaluated for 16 phases
  ``phi in [-T/2, T/2)`` and the clock starts at the best one; the loop then only tracks. This
  avoids the slow pull-in (and the one-slot slip) from a start phase near the half-slot hang-up
  point. The look-ahead waits for A slots of input (deterministic: chunking does not matter).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numba
import numpy as np

from ..errors import ConfigError, ShapeError

__all__ = ["FrontEndConfig", "FrontEndState", "SlotStatistics", "SampleFrontEnd", "gaussian_slot_llr",
           "ppm_symbol_metric", "dpsk_bit_llr", "matched_filter_taps"]


def matched_filter_taps(sps: float, pulse_sigma: float) -> np.ndarray:
    """Gaussian-pulse matched filter ``g_j = h(j/sps) / sum h^2``, ``|j| <= ceil(4 sigma sps)``, float64."""
    D = int(math.ceil(4.0 * pulse_sigma * sps))
    j = np.arange(-D, D + 1, dtype=np.float64)
    h = np.exp(-(j / sps) ** 2 / (2.0 * pulse_sigma ** 2))
    return h / np.sum(h * h)


@dataclass(frozen=True)
class FrontEndConfig:
    """Front-end parameters.

    Parameters
    ----------
    sps : nominal samples per slot (bit), [2, 64].
    pulse_sigma : Gaussian pulse rms width in slots, (0, 1].
    loop_bw : timing-loop noise bandwidth B_L T per slot, (0, 0.1].
    burst_threshold : |z| threshold of the burst energy detector (None = no burst detection).
    burst_confirm : consecutive hot slots that open a burst, >= 1.
    burst_hangover : consecutive cold slots that close a burst, >= 1.
    gate_timing : update timing loop only inside bursts (default: True when bursts are detected).
    avg_slots : time constant (slots) of the running dc / power estimates, >= 1.
    signal_threshold : running mean of z (z^2 with signal_square) above which the loop updates
        (None = always).
    signal_slots : time constant (slots) of that running mean, >= 1.
    signal_square : the gate averages z^2 instead of z.
    acquire_slots : feed-forward phase acquisition over this many slots (0 = off), see the module doc.
    """

    sps: float = 4.0
    pulse_sigma: float = 0.25
    loop_bw: float = 0.002
    burst_threshold: float | None = None
    burst_confirm: int = 4
    burst_hangover: int = 16
    gate_timing: bool | None = None
    avg_slots: float = 64.0
    signal_threshold: float | None = None
    signal_slots: float = 1024.0
    signal_square: bool = False
    acquire_slots: int = 0

    def __post_init__(self):
        def num(name, lo, hi, lo_open=False):
            v = getattr(self, name)
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise ConfigError(f"FrontEndConfig: {name} must be a number, got {name}={v!r}") from None
            if not np.isfinite(f) or f < lo or f > hi or (lo_open and f == lo):
                raise ConfigError(f"FrontEndConfig: {name} must be in {'(' if lo_open else '['}{lo}, {hi}], "
                                  f"got {name}={v!r}")
            object.__setattr__(self, name, f)
        num("sps", 2.0, 64.0)
        num("pulse_sigma", 0.0, 1.0, True)
        num("loop_bw", 0.0, 0.1, True)
        num("avg_slots", 1.0, 1e6)
        num("signal_slots", 1.0, 1e6)
        if self.signal_threshold is not None:
            num("signal_threshold", -1e300, 1e300)
        if self.burst_threshold is not None:
            num("burst_threshold", 0.0, 1e300, True)
        v = self.acquire_slots
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= 1_000_000:
            raise ConfigError(f"FrontEndConfig: acquire_slots must be an integer in 0..1000000, got acquire_slots={v!r}")
        for name in ("burst_confirm", "burst_hangover"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 1_000_000:
                raise ConfigError(f"FrontEndConfig: {name} must be an integer in 1..1000000, got {name}={v!r}")
        if self.gate_timing is None:
            object.__setattr__(self, "gate_timing", self.burst_threshold is not None)
        elif self.gate_timing and self.burst_threshold is None:
            raise ConfigError("FrontEndConfig: gate_timing=True needs burst_threshold (bursts gate the loop)")

    @property
    def loop_gains(self) -> tuple[float, float]:
        """(kp, ki) of the PI loop filter for ``loop_bw`` and damping 1/sqrt(2) (unit detector gain)."""
        zeta = 1.0 / math.sqrt(2.0)
        th = self.loop_bw / (zeta + 0.25 / zeta)
        d = 1.0 + 2.0 * zeta * th + th * th
        return 4.0 * zeta * th / d, 4.0 * th * th / d

    def gate_gain(self, square: bool = False) -> float:
        """Expected signal-gate statistic per unit slot amplitude: the integral of the matched-filter
        output pulse ``exp(-t^2 / (4 sigma^2))`` (slots), ``2 sigma sqrt(pi)``, or of its square,
        ``sigma sqrt(2 pi)`` (for random slot amplitudes, with ``square``)."""
        s = self.pulse_sigma
        return s * math.sqrt(2.0 * math.pi) if square else 2.0 * s * math.sqrt(math.pi)

    @property
    def detector_gain(self) -> float:
        """Early-late detector slope K_d for the Gaussian pulse (normalised error per slot of offset)."""
        s2 = self.pulse_sigma ** 2
        return math.exp(-1.0 / (16.0 * s2)) / (2.0 * s2)


# scalar state layout (float64 / int64 vectors handed to the compiled loop)
_F_TAU, _F_NU, _F_DC, _F_PWR, _F_SIG = range(5)
_I_SLOT, _I_INIT, _I_ON, _I_RUN, _I_START, _I_LASTHOT, _I_CAND = range(7)


@dataclass
class FrontEndState:
    """Streaming state (never shared; :meth:`SampleFrontEnd.push` returns a new one).

    hist : last 2D input samples (FIR memory). mf : retained MF outputs, mf[0] has absolute MF index
    ``mf_base`` (MF output n is centred on input sample n - D). n_in : samples consumed.
    tau : absolute MF index of the next slot centre; nu : loop integrator (fractional period
    correction); dc, pwr : running mean / power of z. slot : next slot number; init : dc/pwr primed;
    burst_on, run (consecutive hot or cold count), start (open burst start), last_hot, cand (first hot
    slot of the current hot run).
    """

    hist: np.ndarray
    mf: np.ndarray
    mf_base: int = 0
    n_in: int = 0
    fvars: np.ndarray = field(default_factory=lambda: np.zeros(5))
    ivars: np.ndarray = field(default_factory=lambda: np.zeros(7, dtype=np.int64))

    @property
    def tau(self) -> float:
        return float(self.fvars[_F_TAU])

    @property
    def frequency_offset(self) -> float:
        """Recovered fractional period correction: actual samples per slot = sps (1 - nu)."""
        return float(self.fvars[_F_NU])

    @property
    def in_burst(self) -> bool:
        return bool(self.ivars[_I_ON])

    def same_as(self, other: "FrontEndState") -> bool:
        return (self.mf_base == other.mf_base and self.n_in == other.n_in
                and np.array_equal(self.hist, other.hist) and np.array_equal(self.mf, other.mf)
                and np.array_equal(self.fvars, other.fvars) and np.array_equal(self.ivars, other.ivars))


@dataclass
class SlotStatistics:
    """Per recovered slot: ``z`` float64 MF output, ``t`` float64 centre in input samples, ``index``
    int64 slot number, ``in_burst`` bool; ``bursts`` (n, 2) int64 completed bursts [start, end]
    (slot numbers, end inclusive)."""

    z: np.ndarray
    t: np.ndarray
    index: np.ndarray
    in_burst: np.ndarray
    bursts: np.ndarray

    def __len__(self):
        return self.z.shape[0]

    @staticmethod
    def concat(parts) -> "SlotStatistics":
        parts = list(parts)
        if not parts:
            return SlotStatistics(np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool),
                                  np.zeros((0, 2), np.int64))
        return SlotStatistics(*(np.concatenate([getattr(p, f) for p in parts])
                                for f in ("z", "t", "index", "in_burst", "bursts")))


@numba.njit(cache=True)
def _fir(ext, g, out):  # pragma: no cover - compiled
    L = g.shape[0]
    for n in range(out.shape[0]):
        acc = 0.0
        for j in range(L):
            acc += g[j] * ext[n + L - 1 - j]
        out[n] = acc


@numba.njit(cache=True)
def _interp(buf, p):  # pragma: no cover - compiled
    """Cubic Lagrange interpolation of buf at fractional index p (needs p-1 .. p+2 inside)."""
    i = int(math.floor(p))
    mu = p - i
    ym1, y0, y1, y2 = buf[i - 1], buf[i], buf[i + 1], buf[i + 2]
    return (-mu * (mu - 1.0) * (mu - 2.0) / 6.0 * ym1 + (mu + 1.0) * (mu - 1.0) * (mu - 2.0) / 2.0 * y0
            - (mu + 1.0) * mu * (mu - 2.0) / 2.0 * y1 + (mu + 1.0) * mu * (mu - 1.0) / 6.0 * y2)


@numba.njit(cache=True)
def _track(buf, base, fv, iv, P, half, kp, ki, kd, alpha, thr, use_burst, confirm, hangover, gate,
           use_sig, sig_thr, sig_alpha, sig_sq, warm, acq, z_out, t_out, k_out, b_out, bursts_out):  # pragma: no cover - compiled
    """Process every slot whose interpolation window lies inside buf. Returns (n_slots, n_bursts)."""
    n = 0
    nb = 0
    end = base + buf.shape[0]
    while True:
        tau = fv[0]
        if math.floor(tau + half) + 3 > end - 1 or n >= z_out.shape[0]:
            break
        # feed-forward phase acquisition, once, when the loop would first run (signal present)
        if acq > 0 and iv[1] == 0 and ((not use_sig) or fv[4] > sig_thr) and ((not gate) or iv[2] == 1):
            if math.floor(tau + (acq + 1) * P) + 3 > end - 1:
                break                                   # wait for the look-ahead window
            best_e = -1.0
            best_phi = 0.0
            for c in range(16):
                phi = (c / 16.0 - 0.5) * P
                e_sum = 0.0
                for j in range(acq):
                    v = _interp(buf, tau + phi + j * P - base)
                    e_sum += v * v
                if e_sum > best_e:
                    best_e = e_sum
                    best_phi = phi
            tau = tau + best_phi
            fv[0] = tau
            iv[1] = -1                                  # acquired; dc / pwr not primed yet
        z = _interp(buf, tau - base)
        ze = _interp(buf, tau - half - base)
        zl = _interp(buf, tau + half - base)
        k = iv[0]
        # burst energy detector
        if use_burst:
            hot = abs(z) > thr
            if iv[2] == 0:
                if hot:
                    if iv[3] == 0:
                        iv[6] = k
                    iv[3] += 1
                    if iv[3] >= confirm:
                        iv[2] = 1
                        iv[4] = iv[6]
                        iv[5] = k
                        iv[3] = 0
                else:
                    iv[3] = 0
            else:
                if hot:
                    iv[3] = 0
                    iv[5] = k
                else:
                    iv[3] += 1
                    if iv[3] >= hangover:
                        bursts_out[nb, 0] = iv[4]
                        bursts_out[nb, 1] = iv[5]
                        nb += 1
                        iv[2] = 0
                        iv[3] = 0
        update = (not gate) or iv[2] == 1
        if use_sig:                 # two points per slot: nearly independent of the timing phase
            sv = 0.5 * (z * z + zl * zl) if sig_sq else 0.5 * (z + zl)
            fv[4] += sig_alpha * (sv - fv[4])
            update = update and fv[4] > sig_thr
        if update and acq > 0 and iv[1] == 0:
            update = False          # first time the loop would run: acquire the phase at the next slot
        step = 0.0
        if update:
            if iv[1] <= 0:
                fv[2] = z
                fv[3] = 0.0
                iv[1] = 1
            zt = z - fv[2]
            fv[2] += alpha * (z - fv[2])
            fv[3] += alpha * (zt * zt - fv[3])
            if iv[1] < warm:                 # dc / pwr still converging: no loop update yet
                iv[1] += 1
            elif fv[3] > 0.0:
                e = zt * (zl - ze) / fv[3]
                d = -e / kd
                if d > 0.5:
                    d = 0.5
                elif d < -0.5:
                    d = -0.5
                fv[1] += ki * d
                step = kp * d
        z_out[n] = z
        t_out[n] = tau
        k_out[n] = k
        b_out[n] = iv[2] == 1
        n += 1
        iv[0] = k + 1
        fv[0] = tau + P * (1.0 - fv[1] - step)
    return n, nb


class SampleFrontEnd:
    """Streaming matched filter + slot timing recovery + burst detection (see the module doc).

    ``push(y, state) -> (SlotStatistics, state)``; ``initial_state()``; ``flush(state)`` closes an
    open burst at the end of a record (slots still inside the interpolation window stay unread).

    Input ``y``: real 1-D samples (int or float dtype, finite); empty chunks are fine.
    Raises :class:`ShapeError` for other dtypes, ndim != 1, or non-finite samples.
    """

    def __init__(self, config: FrontEndConfig):
        if not isinstance(config, FrontEndConfig):
            raise ConfigError(f"SampleFrontEnd: config must be a FrontEndConfig, got {type(config).__name__}")
        self.config = config
        self.taps = matched_filter_taps(config.sps, config.pulse_sigma)
        self.delay = (self.taps.shape[0] - 1) // 2
        self.kp, self.ki = config.loop_gains
        self.kd = config.detector_gain

    @property
    def noise_gain(self) -> float:
        """Variance gain ``sum g^2`` of the matched filter for white noise (per-sample variance -> z)."""
        return float(np.sum(self.taps ** 2))

    def initial_state(self) -> FrontEndState:
        fv = np.zeros(5)
        fv[_F_TAU] = self.delay + self.config.sps / 2.0
        return FrontEndState(hist=np.zeros(2 * self.delay), mf=np.zeros(0), fvars=fv)

    def _check(self, y) -> np.ndarray:
        a = np.asarray(y)
        if a.ndim != 1:
            raise ShapeError(f"SampleFrontEnd: samples must be 1-D (n,), got shape {a.shape}")
        if a.dtype.kind not in "iuf":
            raise ShapeError(f"SampleFrontEnd: samples must be real int or float, got dtype {a.dtype}")
        a = a.astype(np.float64, copy=False)
        if a.size and not np.all(np.isfinite(a)):
            i = int(np.flatnonzero(~np.isfinite(a))[0])
            raise ShapeError(f"SampleFrontEnd: samples must be finite, found {a[i]} at chunk index {i}")
        return a

    def push(self, y, state: FrontEndState | None = None) -> tuple[SlotStatistics, FrontEndState]:
        c = self.config
        x = self._check(y)
        st = self.initial_state() if state is None else state
        if not isinstance(st, FrontEndState):
            raise ConfigError(f"SampleFrontEnd.push: state must be a FrontEndState, got {type(st).__name__}")
        ext = np.concatenate([st.hist, x])
        mf_new = np.empty(x.shape[0])
        _fir(ext, self.taps, mf_new)
        buf = np.concatenate([st.mf, mf_new])
        fv, iv = st.fvars.copy(), st.ivars.copy()
        cap = int(buf.shape[0] / (c.sps * 0.9)) + 4
        z, t = np.empty(cap), np.empty(cap)
        k, b = np.empty(cap, np.int64), np.empty(cap, np.bool_)
        bursts = np.empty((cap, 2), np.int64)
        thr = c.burst_threshold if c.burst_threshold is not None else 0.0
        n, nb = _track(buf, st.mf_base, fv, iv, c.sps, c.sps / 2.0, self.kp, self.ki, self.kd,
                       1.0 / c.avg_slots, thr, c.burst_threshold is not None, c.burst_confirm,
                       c.burst_hangover, bool(c.gate_timing), c.signal_threshold is not None,
                       0.0 if c.signal_threshold is None else c.signal_threshold, 1.0 / c.signal_slots,
                       bool(c.signal_square), int(c.avg_slots) if c.signal_threshold is not None else 1,
                       int(c.acquire_slots), z, t, k, b, bursts)
        keep_from = max(int(math.floor(fv[_F_TAU] - c.sps)) - 4 - st.mf_base, 0)
        keep_from = min(keep_from, buf.shape[0])
        new = FrontEndState(hist=ext[ext.shape[0] - 2 * self.delay:].copy(), mf=buf[keep_from:].copy(),
                            mf_base=st.mf_base + keep_from, n_in=st.n_in + x.shape[0], fvars=fv, ivars=iv)
        stats = SlotStatistics(z=z[:n].copy(), t=t[:n] - self.delay, index=k[:n].copy(), in_burst=b[:n].copy(),
                               bursts=bursts[:nb].copy())
        return stats, new

    def flush(self, state: FrontEndState) -> tuple[np.ndarray, FrontEndState]:
        """End of record: the open burst (if any) as a (0|1, 2) array [start, last hot slot]; state closed."""
        iv = state.ivars.copy()
        out = np.zeros((0, 2), np.int64)
        if iv[_I_ON]:
            out = np.array([[iv[_I_START], iv[_I_LASTHOT]]], np.int64)
            iv[_I_ON] = 0
            iv[_I_RUN] = 0
        return out, replace(state, ivars=iv, fvars=state.fvars.copy())

    def process(self, y) -> SlotStatistics:
        """One-shot convenience: push the whole record and append the open burst from :meth:`flush`."""
        s, st = self.push(y)
        tail, _ = self.flush(st)
        s.bursts = np.concatenate([s.bursts, tail])
        return s


# --------------------------------------------------------------------------------------------
# soft metrics


def gaussian_slot_llr(z, moments: dict) -> np.ndarray:
    """Slot LLR ``ln N(z; mean1, var1) - ln N(z; mean0, var0)`` (pulse vs empty), float64.

    ``moments``: ``{"mean0", "var0", "mean1", "var1"}`` (e.g. :func:`modem.channel.apd.apd_slot_moments`
    with ``noise_var = thermal_sigma**2 * SampleFrontEnd.noise_gain``); variances must be > 0.
    """
    z = np.asarray(z, dtype=np.float64)
    m0, v0, m1, v1 = (float(moments[k]) for k in ("mean0", "var0", "mean1", "var1"))
    if not (v0 > 0 and v1 > 0):
        raise ConfigError(f"gaussian_slot_llr: variances must be > 0, got var0={v0}, var1={v1}")
    return 0.5 * math.log(v0 / v1) + (z - m0) ** 2 / (2 * v0) - (z - m1) ** 2 / (2 * v1)


def ppm_symbol_metric(slot_llr, code) -> np.ndarray:
    """Codeword-aligned slot LLRs ``(F, code.slots_per_codeword)`` -> SCPPMDecoder metric ``(F, S, M)``.

    Drops the CSM symbols and the guard slots; sums the q_d repeats (independent observations).
    """
    c = code
    y = np.asarray(slot_llr, dtype=np.float64)
    if y.ndim != 2 or y.shape[-1] != c.slots_per_codeword:
        raise ShapeError(f"ppm_symbol_metric: slot_llr must have shape (F, {c.slots_per_codeword}), got {y.shape}")
    F, n_sym, q = y.shape[0], c.symbols_per_codeword, c.repetition
    if q == 1:
        z = y.reshape(F, n_sym, c.slots_per_symbol)
    elif c.repeat_unit == "symbol":
        z = y.reshape(F, n_sym, q, c.slots_per_symbol).sum(axis=2)
    else:
        z = y.reshape(F, q, n_sym, c.slots_per_symbol).sum(axis=1)
    return np.ascontiguousarray(z[:, c.L_csm:, : c.M])


def dpsk_bit_llr(d, es: float, sigma2: float, modes: int = 1, extra_var: float = 0.0) -> np.ndarray:
    """Gaussian-moment DPSK LLR from balanced outputs ``d``: ``2 E_b d / (2 M sigma^4 + 2 E_b sigma^2 + extra_var)``.

    Positive = bit 0. ``extra_var``: thermal/ADC variance after the matched filter. The reference
    (dvbs2-ldpc-dpsk.md 8.2) notes this slope is 1.4-1.8x too small; scale it for BP decoders.
    """
    d = np.asarray(d, dtype=np.float64)
    return 2.0 * es * d / (2.0 * modes * sigma2 ** 2 + 2.0 * es * sigma2 + extra_var)
