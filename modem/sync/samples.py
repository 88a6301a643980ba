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
  across the gaps. No gear shifting; long burst gaps use the burst-periodic mode below.
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
* **Burst-periodic mode** (``burst_period`` Pb > 0 slots, with ``burst_length`` L; burst-mode DPSK
  with long gaps, e.g. duty 1/40: 9984 dark slots between 256-bit bursts, where a frequency error
  the in-burst loop leaves moves the next burst by slots). Bursts start every Pb slots; the
  dark-referenced first bit ``s`` of a burst is followed by L - 1 signal slots and the
  dark-referenced slot ``s + L``. At the first burst (detector confirmed) the phase is acquired
  as above over A slots, the edge ``s`` is found within ``_EDGE_BACK`` slots before the detected
  start, and the clock steps back to 2 slots before ``s`` (the burst is read again, whole, at the
  acquired phase under new slot numbers). From then on, ``_LEAD_SLOTS`` slots before the next
  burst is due (slot ``s_exp = s + Pb``, before any of its slots is read; no detector needed):
  fine phase ``phi`` (16 phases) over ``A - 12`` slots of the expected burst; integer edge ``s``
  within +-6 slots of ``s_exp``, the maximum-likelihood split of the slots around both edges into
  dark (``z ~ N(0, vd)``, ``vd`` a running mean of ``z^2`` over cold slots between bursts),
  dark-referenced edge bit (``N(0, sqrt(vd ms))``) and signal (``N(+-A, vs)``, ``ms`` the mean
  ``z^2`` at the acquired phase); the timing error ``D = phi + (s - s_exp) T`` moves the clock so
  that slot ``s_exp`` sits at the edge (the slot count stays on the burst grid) and updates the
  frequency ``nu -= g D / (G T)`` (``G`` slots since the last measured burst; ``g`` = 1, 1/2, 1/3,
  ... down to 1/4). Inside bursts the loop is proportional only (its integrator, fed by ~250
  slots, wandered by hundreds of ppm): the clock rate comes from the burst period. Single-burst
  edges are wrong by a slot now and then (the dark-referenced bits look like signal or dark),
  so once two bursts in a row agree with the prediction (edge at ``s_exp``, ``|phi| < T/4``) the
  grid is *locked*: the prediction gives the integer and only ``phi`` is used, until 8 bursts in a
  row put the edge off on the same side (a frequency wrong by a whole slot per period, invisible
  to ``phi``) and it unlocks. Before the lock, after a frequency update, an edge more than a slot
  off the prediction is held back once (``m = 0`` for that burst) and taken when the next burst
  jumps the same way; such a burst never counts toward the lock. (It used to be dropped as an
  outlier *and* counted as agreeing: a first edge a slot off gave a frequency a slot per period
  off, whose 2-slot jumps then locked the grid on that frequency for ~8 bursts, enough to lose
  the first FEC frame.) A burst that is due but absent (mean ``z^2`` below ``burst_threshold^2``)
  leaves the clock freewheeling. The grid is dropped (the clock rate is kept) and acquired again
  at the next burst the detector confirms when ``_DROP_ABSENT`` (16) due bursts in a row are
  absent, or when ``_DROP_OFFGRID`` (3) bursts in a row are seen off the grid: the detector
  confirming a burst where the grid says dark (beyond the burst and the edge search on either
  side), or the first slots of a due burst dark while the burst is there (the bursts now start
  later, by less than a burst; the frequency is not updated from such a burst). The count starts
  again at a burst the detector confirms at its start on the grid, or whose first slots have
  signal with no burst confirmed off the grid just before it (a burst confirmed further inside the
  grid's burst does neither: bursts moved 30-280 slots later are confirmed there, and restarting
  the count at them kept such a grid for ever). It used to keep
  its grid for ever: when the bursts moved (the transmitter restarting its burst schedule,
  samples lost upstream, two records back to back), nothing after the move decoded. Each slot
  carries the grid's burst start in force when it was read (``SlotStatistics.grid_start``), so
  the receiver's burst grid moves at the right window whatever the chunking. The current burst start is :attr:`FrontEndState.burst_start`
  (the receiver's burst grid takes its phase from it). Measured (divider 40, 256-bit bursts,
  20 TM frames / 6 short FEC frames, offsets 0, +-150, +-250 ppm): the estimate ends within ~5 ppm;
  random records decoding every frame at 6 photons/bit: 27 of 30 before, see
  :class:`modem.sample_receiver.DPSKSampleReceiver` for the figures with this and the receiver's
  changes.
* **Burst hold** (burst-periodic mode, ``burst_hold`` H > 0, ``burst_length`` > 0). Why: one
  burst's edge is a poor measurement at low photon numbers (2 photons/bit, given the true timing
  phase: right in 50 % of the bursts, a slot off in 32 %, 2-6 slots off in 18 %; 90 % right at 6),
  and the tracker above placed every burst from its own edge until the grid locked: the first
  frequency updates turned an edge 5 slots off into a clock thousands of ppm off, the grid took
  ~20-30 bursts to converge (edges up to 11 slots off on the way), and a first edge found tens of
  slots late (a detector firing late in a burst read at the wrong timing phase) left it on a wrong
  grid until it was dropped; a first burst read near half a slot off could be missed altogether.
  Those bursts carry a record's first FEC frame. Now, from a grid acquisition on, the slots are
  *held* (:attr:`FrontEndState.held`, not returned) while the tracker reads H more bursts; the hold
  starts ``_HOLD_BACK`` (4) burst periods before the acquiring burst where the record reaches back
  that far (only while no hold has fitted a grid yet, or after the grid was dropped for bursts off
  it and the new one is off the lattice of the last locked grid: bursts the grid already read on
  the right lattice are not read twice, which would shift the FEC frames in the bit stream). Then
  the grid is *fitted to all the held bursts* (:meth:`SampleFrontEnd._fit_hold`): (1) the burst comb
  (energy of windows of L - 1 slots every S samples) over start offsets within +-384 slots of the
  tracker's first held start and periods S for clock rates within +-1000 ppm of nominal (and
  around the tracker's own), in steps of half a slot of drift over the hold; (2) each burst's
  timing phase on that comb (16 phases, parabolic peak), which fixes the starts modulo one slot;
  a circular fit then a line through them; (3) the whole-slot offset and rate by the likelihood of
  every slot of every held burst (dark / dark-referenced edge bit / signal, the edge model above,
  both edges); (4) a line through the bursts' timing phases on that grid. The held slots are read
  again on the fitted grid (same slot numbers, burst starts at the first held burst + multiples of
  Pb; from samples down to 384 slots before the fit's bound: a first held start found late moves
  the grid that far back, and the first burst's first slots came out as 0) and returned, and the tracker goes on from the fitted grid and rate, locked. A grid dropped
  during a hold is replaced by the one fitted to the bursts held so far (the hold is settled
  early); at the end of a record (:meth:`SampleFrontEnd.drain`) a hold in progress is settled on
  the bursts it has; fewer than 4 bursts with signal: the slots go out as read. Bound: at most
  (H + 4) burst periods of slots held and of matched-filter samples kept (H = 32, 256-bit bursts:
  36 periods, 37k slots at divider 4, 369k at divider 40; ~13 us / 128 us at 2.88 GHz), plus 384
  slots of samples below the hold (its re-read); between holds 2 (4 periods + ~110 slots) + ~420
  slots of samples are kept (two acquisitions in one push may each step back 4 periods). The
  reading position advances: an acquisition that would start reading less than a burst period past
  the furthest start so far may step back once in a row, and the next steps back no further (a
  record whose grid was dropped during every hold stepped back over the same samples for ever,
  emitting slots without end: divider 40, two records, 6 photons/bit). The output is the same
  whatever the chunking (the hold ends at a fixed slot, the fit reads only
  samples between fixed bounds). Measured (2 photons/bit, divider 4 and 8, 256-bit bursts, 0 and
  -150 ppm, 30 random records per point): the first FEC frame decodes in 30/30 at every point,
  against 12, 6, 8 and 6 of 30 without the hold (``tests/test_burst_first_frame.py``).
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
    burst_period : burst-periodic mode (module doc): bursts start every this many slots (0 = off;
        needs burst_threshold and acquire_slots >= 16).
    burst_length : slots per burst in that mode (0 = unknown: the trailing edge is not used).
    burst_hold : that mode with ``burst_length`` > 0: bursts held at every (re-)acquisition of the
        burst grid before their slots are handed on, then read again on the grid fitted to all of
        them (module doc, "Burst hold"); 0 = off. Ignored without ``burst_period``; with it, needs
        ``burst_length`` > 0.
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
    burst_period: int = 0
    burst_length: int = 0
    burst_hold: int = 0

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
        v = self.burst_period
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= 100_000_000:
            raise ConfigError(f"FrontEndConfig: burst_period must be an integer in 0..100000000, got burst_period={v!r}")
        if v and (self.burst_threshold is None or self.acquire_slots < 2 * _EDGE_WIDTH):
            raise ConfigError(f"FrontEndConfig: burst_period={v!r} needs burst_threshold and acquire_slots >= "
                              f"{2 * _EDGE_WIDTH}, got burst_threshold={self.burst_threshold!r}, "
                              f"acquire_slots={self.acquire_slots!r}")
        v = self.burst_length
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < max(self.burst_period, 1):
            raise ConfigError(f"FrontEndConfig: burst_length must be an integer in 0..burst_period-1, got "
                              f"burst_length={v!r} (burst_period={self.burst_period!r})")
        v = self.burst_hold
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not (v == 0 or 4 <= v <= 1024):
            raise ConfigError(f"FrontEndConfig: burst_hold must be 0 or an integer in 4..1024, got burst_hold={v!r}")
        if v and self.burst_period and not self.burst_length:
            raise ConfigError(f"FrontEndConfig: burst_hold={v!r} needs burst_length > 0 (the hold's fit uses both "
                              f"burst edges), got burst_length={self.burst_length!r} "
                              f"(burst_period={self.burst_period!r}); burst_hold=0 for none")
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
_F_TAU, _F_NU, _F_DC, _F_PWR, _F_SIG, _F_DARK = range(6)
# burst-periodic mode: MF index of the last burst start measured with the grid locked, and the burst
# period in samples then (0: none yet); a grid acquired on that lattice again (the bursts did not
# move: a fade, a gap) does not hold the bursts before it (module doc, "Burst hold")
_F_LAT, _F_LATP = 6, 7
# burst-periodic mode: the furthest MF index at which a first-burst acquisition has started reading
# (after its hold's step back; -inf before any). An acquisition that starts less than a burst period
# after it is allowed once in a row (a step back to bursts missed before a false acquisition); the
# next one steps back no further (module doc, "Burst hold")
_F_ACQ = 8
_N_FVARS = 9
_I_SLOT, _I_INIT, _I_ON, _I_RUN, _I_START, _I_LASTHOT, _I_CAND = range(7)
# burst-periodic mode (module doc): first burst pending, current burst start (slot), anchored,
# slot of the last measured burst start, lock count, same-side disagreement count (signed),
# frequency updates made
_I_REACQ, _I_PREV, _I_HAVEPREV, _I_LASTMEAS, _I_LOCK, _I_DISAGREE, _I_NFREQ = range(7, 14)
# before the lock: sign of an edge jump of more than a slot held back at the last burst (0: none)
_I_JUMP = 14
# grid doubts: bursts due but absent in a row; bursts seen off the grid in a row (module doc)
_I_ABSENT, _I_OFFGRID = 15, 16
# burst hold (module doc): 0 none, 1 holding the slots read since the grid was acquired, 2 the
# hold is complete (decide), 3 the grid was dropped while holding (release the slots as read);
# the first held burst's start (slot number); the slot at which the hold is complete; a hold has
# fitted the grid since the start; why the grid was last dropped (1 bursts absent, 2 off the grid)
_I_HOLD, _I_HOLD_S0, _I_HOLD_END, _I_HOLD_FITTED, _I_DROPPED = 17, 18, 19, 20, 21
# first-burst acquisitions in a row that started less than a burst period past _F_ACQ
_I_NOPROGRESS = 22
# the detector confirmed a burst off the grid within a burst length before the burst due, since
# the last re-acquisition (bursts moved earlier: that burst's first slots, whatever they look like,
# do not restart the off-grid count)
_I_OFFSEEN = 23
_N_IVARS = 24
_LOCK_AFTER, _UNLOCK_AFTER = 2, 8
# the grid is dropped after this many due bursts absent in a row, or this many bursts off it in a row
_DROP_ABSENT, _DROP_OFFGRID = 16, 3
# edge search: +-_EDGE_RANGE slots around the expected start (_EDGE_BACK slots before the detected
# start at the first burst: the detector, at the phase before acquisition, fires late, and at low
# photon numbers tens of slots late: at 1.8 photons/bit a signal slot is hot with probability
# ~0.45, so 4 hot slots in a row come ~40 slots into the burst on average; 24 slots back took a
# first edge 35 slots late, from which the grid ran off the bursts), likelihood over _EDGE_WIDTH
# slots on each side of each edge
_EDGE_RANGE, _EDGE_WIDTH, _EDGE_BACK = 6, 8, 96
# the re-acquisition runs this many slots before a burst is due (before any of its slots is read)
_LEAD_SLOTS = _EDGE_RANGE + _EDGE_WIDTH + 2
# burst hold: the grid's integer offset is searched +-_HOLD_RANGE slots around the median of the
# held edges; clock rates within +-_HOLD_PPM of nominal (and around the tracker's own) are tried;
# samples are read no further than _HOLD_MARGIN slots before the first held slot
_HOLD_RANGE, _HOLD_PPM, _HOLD_MARGIN, _HOLD_SPAN = 12, 1000.0, 24, 384
# (the tracker's own rate is tried too where it is within this many ppm of nominal)
_HOLD_PPM_TRACKER = 5000.0
# ... and the hold starts up to this many burst periods before the burst that acquired the grid
# (a first burst the detector missed; the bursts seen off the grid before it was dropped)
_HOLD_BACK = 4


@dataclass
class FrontEndState:
    """Streaming state (never shared; :meth:`SampleFrontEnd.push` returns a new one).

    hist : last 2D input samples (FIR memory). mf : retained MF outputs, mf[0] has absolute MF index
    ``mf_base`` (MF output n is centred on input sample n - D). n_in : samples consumed.
    tau : absolute MF index of the next slot centre; nu : loop integrator (fractional period
    correction); dc, pwr : running mean / power of z. slot : next slot number; init : dc/pwr primed;
    burst_on, run (consecutive hot or cold count), start (open burst start), last_hot, cand (first hot
    slot of the current hot run). held : burst hold (``FrontEndConfig.burst_hold``): the slots read
    since the grid was acquired, not handed on yet (None: none); hold_lo : the lowest MF index the
    hold's fit reads (deterministic, whatever the chunking).
    """

    hist: np.ndarray
    mf: np.ndarray
    mf_base: int = 0
    n_in: int = 0
    fvars: np.ndarray = field(default_factory=lambda: np.zeros(_N_FVARS))
    ivars: np.ndarray = field(default_factory=lambda: np.zeros(_N_IVARS, dtype=np.int64))
    held: SlotStatistics | None = None
    hold_lo: float = 0.0

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

    @property
    def burst_start(self) -> int | None:
        """Burst-periodic mode: slot number of the current burst's first (dark-referenced) bit once
        the first burst is acquired (bursts then start at it + multiples of ``burst_period``), else None."""
        return int(self.ivars[_I_PREV]) if self.ivars[_I_HAVEPREV] else None

    def same_as(self, other: "FrontEndState") -> bool:
        return (self.mf_base == other.mf_base and self.n_in == other.n_in
                and np.array_equal(self.hist, other.hist) and np.array_equal(self.mf, other.mf)
                and np.array_equal(self.fvars, other.fvars) and np.array_equal(self.ivars, other.ivars)
                and (self.held is None) == (other.held is None) and self.hold_lo == other.hold_lo
                and (self.held is None or all(np.array_equal(getattr(self.held, f), getattr(other.held, f))
                                              for f in ("z", "t", "index", "in_burst", "bursts", "grid_start"))))


@dataclass
class SlotStatistics:
    """Per recovered slot: ``z`` float64 MF output, ``t`` float64 centre in input samples, ``index``
    int64 slot number, ``in_burst`` bool; ``bursts`` (n, 2) int64 completed bursts [start, end]
    (slot numbers, end inclusive); ``grid_start`` int64 per slot, burst-periodic mode: the burst start
    (slot number) of the front end's burst grid when that slot was read, -1 while it has none (the
    grid's phase is ``grid_start % burst_period``; it moves when the bursts move)."""

    z: np.ndarray
    t: np.ndarray
    index: np.ndarray
    in_burst: np.ndarray
    bursts: np.ndarray
    grid_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self):
        return self.z.shape[0]

    def slice(self, a: int, b: int) -> "SlotStatistics":
        """Slots a .. b-1 (copies; ``bursts`` empty)."""
        return SlotStatistics(self.z[a:b].copy(), self.t[a:b].copy(), self.index[a:b].copy(),
                              self.in_burst[a:b].copy(), np.zeros((0, 2), np.int64), self.grid_start[a:b].copy())

    @staticmethod
    def concat(parts) -> "SlotStatistics":
        parts = list(parts)
        if not parts:
            return SlotStatistics(np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool),
                                  np.zeros((0, 2), np.int64))
        return SlotStatistics(*(np.concatenate([getattr(p, f) for p in parts])
                                for f in ("z", "t", "index", "in_burst", "bursts", "grid_start")))


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
def _best_phase(buf, p0, P, acq):  # pragma: no cover - compiled
    """Feed-forward phase: the best of 16 phases phi in [-P/2, P/2) by the energy of
    ``z(p0 + phi + j P)``, j < acq (p0 a buffer position). Returns (phi in samples, its energy)."""
    best_e = -1.0
    best_phi = 0.0
    for c in range(16):
        phi = (c / 16.0 - 0.5) * P
        e_sum = 0.0
        for j in range(acq):
            v = _interp(buf, p0 + phi + j * P)
            e_sum += v * v
        if e_sum > best_e:
            best_e = e_sum
            best_phi = phi
    return best_phi, best_e


@numba.njit(cache=True)
def _edge_loglik(buf, p_k0, k0, P1, a, nz, vd, ve, ms, ld, le, ls):  # pragma: no cover - compiled
    """Per-slot log-likelihoods (dark, dark-referenced edge bit, signal) of slots a .. a+nz-1."""
    vs = max(2.0 * ve - vd, vd)             # signal: z ~ N(+-A, vs), A^2 + vs = ms
    a2 = max(ms - vs, 0.0)
    amp = math.sqrt(a2)
    for i in range(nz):
        p = p_k0 + (a + i - k0) * P1
        z2 = 0.0
        if p >= 1.0 and p <= buf.shape[0] - 3:
            v = _interp(buf, p)
            z2 = v * v
        ld[i] = -0.5 * math.log(vd) - 0.5 * z2 / vd
        le[i] = -0.5 * math.log(ve) - 0.5 * z2 / ve
        x = amp * math.sqrt(z2) / vs
        ls[i] = -0.5 * math.log(vs) - 0.5 * (z2 + a2) / vs + x + math.log1p(math.exp(-2.0 * x)) - math.log(2.0)


@numba.njit(cache=True)
def _edge(buf, p_k0, k0, P1, lo, hi, vd, ms, L):  # pragma: no cover - compiled
    """Burst start s in [lo, hi] (slot numbers; slot k0 at buffer position p_k0): the most likely
    split of slots s - W .. s + W into dark (before s, z ~ N(0, vd)), the dark-referenced first bit
    s (z ~ N(0, sqrt(vd ms))) and signal (after s, z^2 of mean ms, taken as N(0, ms)); with a burst
    length L > 0 also the trailing edge (signal up to s + L - 1, slot s + L dark-referenced, dark
    after it)."""
    ve = math.sqrt(vd * ms)
    a = lo - _EDGE_WIDTH
    nz = hi - lo + 1 + 2 * _EDGE_WIDTH
    ld, le, ls = np.empty(nz), np.empty(nz), np.empty(nz)
    td, te, ts = np.empty(nz), np.empty(nz), np.empty(nz)
    _edge_loglik(buf, p_k0, k0, P1, a, nz, vd, ve, ms, ld, le, ls)
    if L > 0:
        _edge_loglik(buf, p_k0, k0, P1, a + L, nz, vd, ve, ms, td, te, ts)
    best_s = lo
    best_sc = -1e300
    for s in range(lo, hi + 1):
        sc = 0.0
        for i in range(nz):
            j = a + i
            sc += ld[i] if j < s else (le[i] if j == s else ls[i])
            if L > 0:
                sc += ts[i] if j < s else (te[i] if j == s else td[i])
        if sc > best_sc:
            best_sc = sc
            best_s = s
    return best_s


@numba.njit(cache=True)
def _acquire_first_burst(buf, base, fv, iv, P, acq, L, Pb, n_back):  # pragma: no cover - compiled
    """Burst-periodic mode, first burst (detector confirmed, slot iv[0] = k0 next): fine phase, edge
    near the detected start; the clock moves back to 2 slots before the edge (those samples are read
    again under new slot numbers: the burst is read whole at the acquired phase), and ``n_back``
    burst periods ``Pb`` further (burst hold), as far as the record goes back. Returns the slots
    actually stepped back beyond the edge."""
    tau = fv[0]
    phi, e = _best_phase(buf, tau - base, P, acq)
    P1 = P * (1.0 - fv[1])
    k0 = iv[0]
    vd = max(fv[5], 1e-9 * e / acq)
    s0 = _edge(buf, tau + phi - base, k0, P1, iv[4] - _EDGE_BACK, iv[4] + 2, vd, max(e / acq, vd), L)
    back = n_back * Pb
    if back > 0 and fv[7] > 0.0:                      # on the lattice of the last locked grid: the
        r = (tau + phi + (s0 - k0) * P1 - fv[6]) % fv[7]    # bursts did not move, those before were
        if min(r, fv[7] - r) <= 2 * _EDGE_RANGE * P1:       # read on it already
            back = 0
    while back > 0 and tau + phi + (s0 - 2 - back - k0) * P1 < (_HOLD_MARGIN + 4) * P:
        back -= Pb                                    # not before the record's first samples
    if tau + phi + (s0 - 2 - back - k0) * P1 < fv[8] + Pb * P1:
        if iv[22] >= 1:                               # progress (module doc, "Burst hold"): else grids
            while back > 0 and tau + phi + (s0 - 2 - back - k0) * P1 < fv[8] + Pb * P1:
                back -= Pb                            # dropped in every hold stepped back for ever
        iv[22] += 1
    else:
        iv[22] = 0
    fv[0] = tau + phi + (s0 - 2 - back - k0) * P1
    fv[8] = max(fv[8], fv[0])
    iv[8] = k0 + 2 + back                             # the edge's new slot number
    iv[9] = 1
    iv[10] = iv[8]
    iv[7] = 0
    if iv[1] == 0:
        iv[1] = -1                                    # acquired; dc / pwr not primed yet
    return back


@numba.njit(cache=True)
def _drop_grid(iv, reason):  # pragma: no cover - compiled
    """Burst-periodic mode: forget the burst grid (not the clock rate); the next burst the detector
    confirms acquires it again (:func:`_acquire_first_burst`). A hold in progress is settled.
    ``reason``: 1 bursts absent, 2 bursts off the grid."""
    if iv[17] == 1:
        iv[17] = 3
    iv[21] = reason
    iv[7] = 0
    iv[9] = 0
    iv[11] = 0
    iv[12] = 0
    iv[14] = 0
    iv[15] = 0
    iv[16] = 0
    iv[23] = 0


@numba.njit(cache=True)
def _head_energy(buf, p_k0, k0, P1, a, n):  # pragma: no cover - compiled
    """Mean z^2 of slots a .. a+n-1 (slot k0 at buffer position p_k0)."""
    acc = 0.0
    for j in range(n):
        p = p_k0 + (a + j - k0) * P1
        if p >= 1.0 and p <= buf.shape[0] - 3:
            v = _interp(buf, p)
            acc += v * v
    return acc / n


@numba.njit(cache=True)
def _reacquire(buf, base, fv, iv, P, acq, Pb, L, thr2):  # pragma: no cover - compiled
    """Burst-periodic mode, at slot k0 = (expected start) - _LEAD_SLOTS (see the module doc): fine
    phase over the expected burst, edge within +-_EDGE_RANGE slots of the expected start (used
    until the grid is locked), shift of the clock so that the expected start sits at the edge,
    burst-to-burst frequency update. Changes fv / iv in place."""
    tau = fv[0]
    P1 = P * (1.0 - fv[1])
    k0 = iv[0]
    s_exp = iv[8] + Pb
    n = acq - 2 * _EDGE_RANGE
    phi, e = _best_phase(buf, tau - base + (_LEAD_SLOTS + _EDGE_RANGE + 1) * P1, P, n)
    iv[8] = s_exp
    off_seen = iv[23]
    iv[23] = 0
    if e < n * thr2:                                  # no burst where one is due: freewheel
        iv[15] += 1
        if iv[15] >= _DROP_ABSENT:                    # ... for long: a fade, or the bursts moved
            _drop_grid(iv, 1)
        return
    iv[15] = 0
    # the first slots of the burst (past the edge search) dark while the burst is there: the bursts
    # start later than the grid says (moved by less than a burst); the frequency is not updated
    hs = min(32, max(4, (n - 8) // 2))
    if _head_energy(buf, tau + phi - base, k0, P1, s_exp + _EDGE_RANGE + 2, hs) < 0.3 * e / n:
        iv[16] += 1
        if iv[16] >= _DROP_OFFGRID:
            _drop_grid(iv, 2)
        return
    if off_seen == 0:       # a burst seen on the grid (its first slots have signal): count again
        iv[16] = 0
    vd = max(fv[5], 1e-9 * e / n)
    s = _edge(buf, tau + phi - base, k0, P1, s_exp - _EDGE_RANGE, s_exp + _EDGE_RANGE, vd, max(e / n, vd), L)
    m = s - s_exp
    if iv[11] >= _LOCK_AFTER:                         # locked: the prediction is within half a slot
        if m == 0:
            iv[12] = 0
        elif (m > 0) == (iv[12] > 0):
            iv[12] += 1 if m > 0 else -1
        else:
            iv[12] = 1 if m > 0 else -1
        if abs(iv[12]) >= _UNLOCK_AFTER:              # the edges keep moving one way: unlock
            iv[11] = 0
            iv[12] = 0
        else:
            m = 0
    else:
        jump = iv[13] >= 1 and abs(m) > 1
        if jump:
            # after a frequency update the edge moves by at most a slot, unless that update came
            # from a wrong edge (a slot off: the frequency is then a slot per period off, and the
            # next edges jump by 2, 3, ...): a jump is held back once as an outlier, taken when
            # the next burst jumps the same way; it never counts toward the lock
            if iv[14] == (1 if m > 0 else -1):
                iv[14] = 0
            else:
                iv[14] = 1 if m > 0 else -1
                m = 0
        else:
            iv[14] = 0
        iv[11] = iv[11] + 1 if (m == 0 and not jump and 4.0 * abs(phi) < P) else 0
    D = phi + m * P1                                  # true - predicted position of slot s_exp
    G = s_exp - iv[10]                                # slots since the last measured burst start
    fv[1] -= max(1.0 / (iv[13] + 1), 0.25) * D / (G * P)    # running mean, then smoothed
    iv[13] += 1
    iv[10] = s_exp
    fv[0] = tau + D
    if iv[11] >= _LOCK_AFTER:                         # the lattice the bursts are on (burst hold)
        fv[6] = tau + D + (s_exp - k0) * P * (1.0 - fv[1])
        fv[7] = Pb * P * (1.0 - fv[1])


@numba.njit(cache=True)
def _z_at(buf, base, lo_p, hi_p, pos, out):  # pragma: no cover - compiled
    """MF output at MF indices ``pos`` (0 outside [lo_p, hi_p]: the burst hold reads only there)."""
    for i in range(pos.shape[0]):
        p = pos[i]
        out[i] = _interp(buf, p - base) if lo_p <= p <= hi_p else 0.0


@numba.njit(cache=True)
def _comb_search(cum, p0, x_lo, nx, dx, S_arr, js, Lp):  # pragma: no cover - compiled
    """Burst hold, coarse grid: the (x, S) among ``x = x_lo + i dx`` (i < nx), ``S in S_arr`` that
    maximises the energy ``sum_j E[x + j S, x + j S + Lp)`` over bursts ``j in js`` (MF indices;
    ``cum[n]`` = sum of the squared MF outputs from index p0 to p0 + n - 1). Returns (x, S)."""
    best = -1.0
    bx = x_lo
    bS = S_arr[0]
    N = cum.shape[0] - 1
    for si in range(S_arr.shape[0]):
        S = S_arr[si]
        for i in range(nx):
            x = x_lo + i * dx
            acc = 0.0
            for q in range(js.shape[0]):
                a = int(math.floor(x + js[q] * S - p0 + 0.5))
                b = a + Lp
                if a >= 0 and b <= N:
                    acc += cum[b] - cum[a]
            if acc > best:
                best = acc
                bx = x
                bS = S
    return bx, bS


@numba.njit(cache=True)
def _phase_energies(buf, base, lo_p, hi_p, pos, P, out):  # pragma: no cover - compiled
    """``out[c] = sum_i z(pos_i + (c / 16 - 1/2) P)^2``, c < 16 (0 outside [lo_p, hi_p])."""
    for c in range(16):
        phi = (c / 16.0 - 0.5) * P
        acc = 0.0
        for i in range(pos.shape[0]):
            p = pos[i] + phi
            if lo_p <= p <= hi_p:
                v = _interp(buf, p - base)
                acc += v * v
        out[c] = acc


@numba.njit(cache=True)
def _track(buf, base, fv, iv, P, half, kp, ki, kd, alpha, thr, use_burst, confirm, hangover, gate,
           use_sig, sig_thr, sig_alpha, sig_sq, warm, acq, Pb, Lb, hold, z_out, t_out, k_out, b_out, bursts_out,
           g_out, h_out):  # pragma: no cover - compiled
    """Process every slot whose interpolation window lies inside buf. Returns (n_slots, n_bursts).
    Stops early, before the slot where a burst hold is complete (``iv[_I_HOLD]`` 2) or after the one
    where the grid was dropped during a hold (3): the caller settles the hold and calls again."""
    n = 0
    nb = 0
    end = base + buf.shape[0]
    while True:
        tau = fv[0]
        if iv[17] >= 2:
            break
        if iv[17] == 1 and iv[9] == 1 and iv[0] == iv[19]:
            iv[17] = 2                                  # the hold's last burst is read: fit the grid
            break
        if math.floor(tau + half) + 3 > end - 1 or n >= z_out.shape[0]:
            break
        # burst-periodic mode: acquire at the first burst, re-acquire before every later one
        if Pb > 0:
            if iv[9] == 1 and iv[0] == iv[8] + Pb - _LEAD_SLOTS:
                if math.floor(tau + (_LEAD_SLOTS + 2 * _EDGE_RANGE + _EDGE_WIDTH + max(acq, Lb) + 3) * P) + 3 > end - 1:
                    break                               # wait for the look-ahead window
                _reacquire(buf, base, fv, iv, P, acq, Pb, Lb, thr * thr)
                tau = fv[0]
            elif iv[9] == 0 and iv[7] == 1:
                if math.floor(tau + (max(acq, Lb) + _EDGE_WIDTH + 4) * P) + 3 > end - 1:
                    break
                held_back = _acquire_first_burst(buf, base, fv, iv, P, acq, Lb, Pb,
                                                 _HOLD_BACK if (hold > 0 and Lb > 0 and (iv[20] == 0 or iv[21] == 2))
                                                 else 0)
                tau = fv[0]
                if hold > 0 and Lb > 0:
                    iv[17] = 1                          # hold the slots of the next bursts
                    iv[18] = iv[8] - held_back          # (from up to _HOLD_BACK periods back)
                    iv[19] = iv[8] + hold * Pb - _LEAD_SLOTS    # ... up to the re-acquisition `hold` on
        # feed-forward phase acquisition, once, when the loop would first run (signal present)
        if Pb == 0 and acq > 0 and iv[1] == 0 and ((not use_sig) or fv[4] > sig_thr) and ((not gate) or iv[2] == 1):
            if math.floor(tau + (acq + 1) * P) + 3 > end - 1:
                break                                   # wait for the look-ahead window
            best_phi, _ = _best_phase(buf, tau - base, P, acq)
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
                        if Pb > 0 and iv[9] == 1 and Lb > 0:
                            # a burst where the grid says dark (past the burst and the edge search
                            # on either side): the bursts have moved
                            r = (iv[6] - iv[8]) % Pb
                            margin = 2 * _EDGE_RANGE + _EDGE_WIDTH
                            if Lb + margin <= r < Pb - margin:
                                iv[16] += 1
                                if r >= Pb - Lb - margin:
                                    iv[23] = 1          # just before the burst due: moved earlier
                                if iv[16] >= _DROP_OFFGRID:
                                    _drop_grid(iv, 2)
                            elif r < margin or r >= Pb - margin:
                                iv[16] = 0              # confirmed at the burst start
                            # (a burst confirmed further inside the grid's burst does not restart the
                            # count: bursts moved later by less than a burst are confirmed there
                            # while their first slots, where the grid starts them, are dark)
                        if Pb > 0 and iv[9] == 0:
                            iv[7] = 1
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
        if Pb > 0 and iv[2] == 0 and abs(z) <= thr:   # noise power between bursts (edge model)
            fv[5] = z * z if fv[5] == 0.0 else fv[5] + alpha * (z * z - fv[5])
        update = ((not gate) or iv[2] == 1) and iv[7] == 0    # (no step before a pending re-acquisition)
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
        g_out[n] = iv[8] if (Pb > 0 and iv[9] == 1) else -1
        h_out[n] = iv[17] != 0
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
        fv = np.zeros(_N_FVARS)
        fv[_F_TAU] = self.delay + self.config.sps / 2.0
        fv[_F_ACQ] = -math.inf
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
        return self._push(y, state, final=False)

    def _push(self, y, state, final: bool) -> tuple[SlotStatistics, FrontEndState]:
        """:meth:`push`; ``final`` (end of record, :meth:`drain`): a burst hold still in progress
        is settled on the bursts it has."""
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
        thr = c.burst_threshold if c.burst_threshold is not None else 0.0
        hold = int(c.burst_hold) if c.burst_period and c.burst_length else 0
        out, bursts_all = [], []
        held, hold_lo = st.held, st.hold_lo
        cap = int(buf.shape[0] / (c.sps * 0.9)) + 4
        while True:
            z, t = np.empty(cap), np.empty(cap)
            k, b = np.empty(cap, np.int64), np.empty(cap, np.bool_)
            bursts = np.empty((cap, 2), np.int64)
            g = np.empty(cap, np.int64)
            h = np.empty(cap, np.bool_)
            n, nb = _track(buf, st.mf_base, fv, iv, c.sps, c.sps / 2.0, self.kp, 0.0 if c.burst_period else self.ki,
                           self.kd, 1.0 / c.avg_slots, thr, c.burst_threshold is not None, c.burst_confirm,
                           c.burst_hangover, bool(c.gate_timing), c.signal_threshold is not None,
                           0.0 if c.signal_threshold is None else c.signal_threshold, 1.0 / c.signal_slots,
                           bool(c.signal_square), int(c.avg_slots) if c.signal_threshold is not None else 1,
                           int(c.acquire_slots), int(c.burst_period), int(c.burst_length), hold, z, t, k, b, bursts,
                           g, h)
            part = SlotStatistics(z=z[:n].copy(), t=t[:n] - self.delay, index=k[:n].copy(), in_burst=b[:n].copy(),
                                  bursts=np.zeros((0, 2), np.int64), grid_start=g[:n].copy())
            bursts_all.append(bursts[:nb].copy())
            j = int(np.argmax(h[:n])) if n and h[:n].any() else n      # slots from j on are held
            out.append(part.slice(0, j))
            if j < n:
                if held is None:
                    held = part.slice(j, n)
                    hold_lo = float(held.t[0] + self.delay - _HOLD_MARGIN * c.sps)
                else:
                    held = SlotStatistics.concat([held, part.slice(j, n)])
            stopped = iv[_I_HOLD] >= 2                  # the tracker stopped to settle the hold
            if iv[_I_HOLD] >= 2 or (final and iv[_I_HOLD] == 1):
                # the hold is complete, or the tracker dropped its grid during it (the grid fitted
                # to the held bursts then replaces it), or the record ends
                fit = None if held is None else self._fit_hold(buf, st.mf_base, hold_lo, fv, iv, held)
                if fit is not None:
                    held = self._read_again(buf, st.mf_base, hold_lo, held, iv, fit)
                    iv[_I_HOLD_FITTED] = 1
                    if iv[_I_HOLD] >= 2:
                        self._continue_from(fv, iv, fit)
                iv[_I_HOLD] = 0
            if iv[_I_HOLD] == 0 and held is not None:
                out.append(held)
                held = None
            if not stopped:
                break
        back = 1 if not c.burst_period else _EDGE_BACK + _EDGE_WIDTH + c.burst_confirm + 4
        if hold:
            # an acquisition in the next push starts its hold up to _HOLD_BACK periods (and the
            # edge search) before its edge, and the one after it, while the tracker re-reads the
            # kept samples, as far again before that (the progress rule allows it once): keep
            # both, at the tracker's slot period
            # (the held slots are read again down to _HOLD_SPAN slots below the fit's bound)
            back = (2 * (back + _HOLD_BACK * int(c.burst_period)) + _HOLD_MARGIN + _HOLD_SPAN + 8) \
                * max(1.0, 1.0 - fv[_F_NU])
        keep_from = math.floor(fv[_F_TAU] - back * c.sps) - 4
        if held is not None:
            keep_from = min(keep_from, math.floor(hold_lo - _HOLD_SPAN * c.sps) - 4)
        keep_from = min(max(keep_from - st.mf_base, 0), buf.shape[0])
        new = FrontEndState(hist=ext[ext.shape[0] - 2 * self.delay:].copy(), mf=buf[keep_from:].copy(),
                            mf_base=st.mf_base + keep_from, n_in=st.n_in + x.shape[0], fvars=fv, ivars=iv,
                            held=held, hold_lo=hold_lo if held is not None else 0.0)
        stats = SlotStatistics.concat(out)
        stats.bursts = np.concatenate(bursts_all) if bursts_all else np.zeros((0, 2), np.int64)
        return stats, new

    # -- burst hold (module doc) -------------------------------------------------------------

    def _fine_phase(self, buf, base, lo_p, hi_p, pos) -> tuple[float, float]:
        """Timing offset (samples) of the slot centres ``pos`` (MF indices): the best of 16 phases in
        [-T/2, T/2) by energy, refined by a parabola through it and its neighbours; and the mean
        ``z^2`` per slot at the best phase."""
        P = self.config.sps
        e = np.empty(16)
        _phase_energies(buf, base, lo_p, hi_p, np.ascontiguousarray(pos, np.float64), P, e)
        c = int(np.argmax(e))
        em, ep = e[(c - 1) % 16], e[(c + 1) % 16]
        den = em - 2.0 * e[c] + ep
        d = min(max(0.5 * (em - ep) / den, -0.5), 0.5) if den < 0.0 else 0.0
        return ((c + d) / 16.0 - 0.5) * P, float(e[c] / max(pos.shape[0], 1))

    @staticmethod
    def _slot_logliks(z, vd: float, ms: float):
        """Per-slot log-likelihoods (dark, dark-referenced edge bit, signal) of MF outputs ``z``: the
        model of the edge search (:func:`_edge_loglik`)."""
        ve = math.sqrt(vd * ms)
        vs = max(2.0 * ve - vd, vd)
        a2 = max(ms - vs, 0.0)
        z2 = z * z
        x = math.sqrt(a2) * np.abs(z) / vs
        ld = -0.5 * math.log(vd) - 0.5 * z2 / vd
        le = -0.5 * math.log(ve) - 0.5 * z2 / ve
        ls = -0.5 * math.log(vs) - 0.5 * (z2 + a2) / vs + x + np.log1p(np.exp(-2.0 * x)) - math.log(2.0)
        return ld, le, ls

    def _fit_hold(self, buf, base, lo_p, fv, iv, held):
        """Burst hold: the burst grid fitted to the held bursts, ``(X, S, hi_p, margin)`` (X the MF
        index of the first held burst's start, S the burst period in samples, hi_p the highest MF
        index read, margin the log-likelihood lead of the chosen grid over the next best), or None
        (fewer than 4 bursts present). See the module doc."""
        c = self.config
        P, Pb, L, W = c.sps, int(c.burst_period), int(c.burst_length), _EDGE_WIDTH
        s0, k_first, last = int(iv[_I_HOLD_S0]), int(held.index[0]), int(held.index[-1])
        pos_f = held.t + self.delay                     # the tracker's slot centres (MF indices)
        hi_p = float(pos_f[-1]) + 0.5 * P
        n_ph = max(min(int(c.acquire_slots) - 2 * _EDGE_RANGE, L - 4), 4)
        M = max(min(_HOLD_RANGE, (Pb - L) // 2 - W - 1), 1)
        thr2 = float(c.burst_threshold or 0.0) ** 2
        J = 0
        while J < c.burst_hold + _HOLD_BACK and s0 + J * Pb + L <= last:
            J += 1
        a0 = s0 - k_first
        if J < 4 or a0 < 0:
            return None
        # coarse: the burst comb (energy in windows of L slots every S samples) over start offsets
        # +-span slots around the tracker's first held start and clock rates within _HOLD_PPM of
        # nominal (and around the tracker's own); only bursts inside the read range for every
        # hypothesis count, so that all hypotheses see the same samples
        R = Pb * P
        S_tr = R * (1.0 - fv[_F_NU])
        S_lo, S_hi = R * (1.0 - _HOLD_PPM * 1e-6), R * (1.0 + _HOLD_PPM * 1e-6)
        if abs(fv[_F_NU]) <= _HOLD_PPM_TRACKER * 1e-6:
            S_lo, S_hi = min(S_lo, S_tr - 2.0 * P), max(S_hi, S_tr + 2.0 * P)
        dS = P / (2.0 * J)                               # <= half a slot of drift over the hold
        S_arr = np.arange(S_lo, S_hi + dS, dS)
        span = max(min(_HOLD_SPAN, (Pb - L - _LEAD_SLOTS) // 2 - 1), 1)
        x_c = float(pos_f[a0])
        p_lo, p_hi = math.ceil(lo_p), math.floor(hi_p)
        e2 = buf[p_lo - base:p_hi - base + 1] ** 2
        cum = np.concatenate([[0.0], np.cumsum(e2)])
        Lp = round((L - 1) * P)
        x_lo = x_c - span * P
        jj = [j for j in range(J) if x_lo + j * S_lo >= p_lo and x_c + span * P + j * S_hi + Lp + P <= p_hi]
        if len(jj) < 4:
            return None
        xb, Sb = _comb_search(cum, float(p_lo), x_lo + P / 2, int(2 * span), P, S_arr, np.array(jj, np.int64), Lp)
        xb -= P / 2                                     # the comb window opens half a slot after the start
        # fine phase of every burst on that comb (MF indices of its slot centres, nominal period)
        start_f, present, ms = np.zeros(J), np.zeros(J, bool), np.zeros(J)
        for j in range(J):
            x = xb + j * Sb                             # the burst's first slot centre on the comb
            phi, e = self._fine_phase(buf, base, lo_p, hi_p, x + np.arange(2, 2 + n_ph) * (Sb / Pb))
            start_f[j], present[j], ms[j] = x + phi, e >= thr2, e
        js = np.flatnonzero(present)
        pairs = js[:-1][np.diff(js) == 1]
        if js.size < 4 or pairs.size < 2:
            return None
        # fractional part of the grid: starts X + j S are known modulo one slot from the fine phases
        w = 2.0 * math.pi / P
        d = start_f[pairs + 1] - start_f[pairs] - R
        f = math.atan2(np.sum(np.sin(w * d)), np.sum(np.cos(w * d))) / w
        u = start_f[js] - js * (R + f)
        c0 = math.atan2(np.sum(np.sin(w * u)), np.sum(np.cos(w * u))) / w
        r = u - c0
        r -= P * np.round(r / P)
        b1, a1 = np.polyfit(js.astype(np.float64), r, 1)
        c0, f = c0 + a1, f + b1
        # integer part: whole slots per period q (clock rates within _HOLD_PPM of nominal, and near
        # the tracker's) and offset m, by the likelihood of every held burst's slots
        qs = np.arange(math.floor((Sb - P - R - f) / P), math.ceil((Sb + P - R - f) / P) + 1)
        # offsets m searched over the tracker's edges' spread (+-M), at most +-_HOLD_SPAN slots
        o = np.round((start_f[js] - c0 - js * (R + f)) / P)
        lo_q = np.array([np.min(o - js * q) for q in qs])
        hi_q = np.array([np.max(o - js * q) for q in qs])
        half = int(min(np.max(hi_q - lo_q) // 2 + M, _HOLD_SPAN))
        r_q = np.round((lo_q + hi_q) / 2).astype(np.int64)
        vd = max(float(fv[_F_DARK]), 1e-9 * float(ms.max()))
        mm = np.arange(-half, half + 1)
        M = half
        score = np.zeros((qs.size, mm.size))
        for j in js:
            starts = r_q + j * qs
            lo_i, hi_i = int(starts.min()) - M - W, int(starts.max()) + M + L + W
            ii = np.arange(lo_i, hi_i + 1)
            zz = np.empty(ii.size)
            _z_at(buf, base, lo_p, hi_p, c0 + j * (R + f) + ii * P, zz)
            ld, le, ls = self._slot_logliks(zz, vd, max(ms[j], vd))
            cd = np.concatenate([[0.0], np.cumsum(ld)])
            cs = np.concatenate([[0.0], np.cumsum(ls)])
            x = starts[:, None] + mm[None, :] - lo_i
            score += cd[x] + le[x] + cs[x + L] - cs[x + 1] + le[x + L] + cd[-1] - cd[x + L + 1]
        flat = score.ravel()
        best = int(np.argmax(flat))
        margin = float(flat[best] - np.partition(flat, -2)[-2]) if flat.size > 1 else math.inf
        qi, mi = divmod(best, mm.size)
        X, S = c0 + (r_q[qi] + mm[mi]) * P, R + f + qs[qi] * P
        # fine: the timing offsets of the bursts read on that grid, a straight line through them
        ph = np.array([self._fine_phase(buf, base, lo_p, hi_p, X + j * S + np.arange(2, 2 + n_ph) * (S / Pb))[0]
                       for j in js])
        b2, a2 = np.polyfit(js.astype(np.float64), ph, 1)
        return X + a2, S + b2, hi_p, margin

    def _read_again(self, buf, base, lo_p, held, iv, fit) -> SlotStatistics:
        """The held slots read again on the fitted grid (same slot numbers; burst starts at the
        first held burst's start + multiples of the period). Samples are read down to
        ``_HOLD_SPAN`` slots below the fit's bound ``lo_p`` (the fit may move the grid that far
        before the tracker's first held start; the first held burst's first slots then lie below
        ``lo_p``), not before the record."""
        c = self.config
        X, S, hi_p, _ = fit
        Pb, s0 = int(c.burst_period), int(iv[_I_HOLD_S0])
        pos = X + (held.index - s0) * (S / Pb)
        z = np.empty(pos.size)
        _z_at(buf, base, max(lo_p - _HOLD_SPAN * c.sps, 1.0, base + 1.0), hi_p, pos, z)
        g = s0 + Pb * np.maximum(np.floor_divide(held.index - s0 + _LEAD_SLOTS, Pb), 0)
        return SlotStatistics(z=z, t=pos - self.delay, index=held.index.copy(), in_burst=held.in_burst.copy(),
                              bursts=np.zeros((0, 2), np.int64), grid_start=g.astype(np.int64))

    def _continue_from(self, fv, iv, fit):
        """The tracker goes on from the fitted grid, locked: next slot (the re-acquisition of the
        burst after the hold) on the line, clock rate from the fitted period."""
        c = self.config
        X, S, _, _ = fit
        Pb, s0 = int(c.burst_period), int(iv[_I_HOLD_S0])
        k = int(iv[_I_SLOT])
        fv[_F_TAU] = X + (k - s0) * (S / Pb)
        fv[_F_NU] = 1.0 - S / (Pb * c.sps)
        # the grid's last burst start: the next re-acquisition (start + Pb - _LEAD_SLOTS) at k or after
        iv[8] = s0 + Pb * -((s0 + Pb - _LEAD_SLOTS - k) // Pb)
        iv[7] = 0
        iv[9] = 1
        iv[10] = iv[8]
        iv[11] = _LOCK_AFTER
        iv[12] = 0
        iv[13] = max(iv[13], 3)
        iv[14] = iv[15] = iv[16] = iv[23] = 0
        fv[_F_LAT] = X + (iv[8] - s0) * (S / Pb)
        fv[_F_LATP] = S

    def drain(self, state: FrontEndState | None) -> tuple[SlotStatistics, FrontEndState]:
        """End of record: the slots :meth:`push` has not read yet although their centres lie in the
        record (the matched filter's delay and the interpolation window, or the look-ahead of a
        phase acquisition / burst re-acquisition, hold back the last slots: ~2.5 slots at sps 4,
        a burst and more in burst-periodic mode). Zeros are pushed past the record end and the
        slots are returned up to the last one centred at or before its last sample
        (``t <= n_in - 1``). Call it once, before :meth:`flush`; the state is then at the end of
        its record (``n_in`` unchanged)."""
        c = self.config
        state = self.initial_state() if state is None else state
        look = max(c.acquire_slots, c.burst_length) + _LEAD_SLOTS + 2 * _EDGE_RANGE + _EDGE_WIDTH + 12
        pad = int(math.ceil(look * c.sps * 1.01)) + 2 * self.delay + 8
        s, st = self._push(np.zeros(pad), state, final=True)
        past = np.flatnonzero(s.t > state.n_in - 1)
        n = len(s) if past.size == 0 else int(past[0])
        last = int(s.index[n - 1]) if n else int(state.ivars[_I_SLOT]) - 1
        out = SlotStatistics(z=s.z[:n].copy(), t=s.t[:n].copy(), index=s.index[:n].copy(),
                             in_burst=s.in_burst[:n].copy(), bursts=s.bursts[s.bursts[:, 1] <= last].copy(),
                             grid_start=s.grid_start[:n].copy())
        return out, replace(st, n_in=state.n_in)

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
        """One-shot convenience: push the whole record, :meth:`drain` the slots held back at its end
        and append the open burst from :meth:`flush` (what a receiver's push + flush sees)."""
        s, st = self.push(y)
        d, st = self.drain(st)
        tail, _ = self.flush(st)
        out = SlotStatistics.concat([s, d])
        out.bursts = np.concatenate([out.bursts, tail])
        return out


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
    if not all(math.isfinite(v) for v in (m0, v0, m1, v1)):
        raise ConfigError(f"gaussian_slot_llr: moments must be finite, got mean0={m0}, var0={v0}, mean1={m1}, var1={v1}")
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
    for name, v, lo_open in (("es", es, False), ("sigma2", sigma2, True), ("extra_var", extra_var, False)):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"dpsk_bit_llr: {name} must be a number, got {name}={v!r}") from None
        if not math.isfinite(f) or f < 0 or (lo_open and f == 0):
            raise ConfigError(f"dpsk_bit_llr: {name} must be finite and {'> 0' if lo_open else '>= 0'}, got {name}={v!r}")
    if isinstance(modes, bool) or not isinstance(modes, (int, np.integer)) or modes < 1:
        raise ConfigError(f"dpsk_bit_llr: modes must be an integer >= 1, got modes={modes!r}")
    d = np.asarray(d, dtype=np.float64)
    return 2.0 * es * d / (2.0 * modes * sigma2 ** 2 + 2.0 * es * sigma2 + extra_var)
