# SPDX-License-Identifier: Apache-2.0
"""Cost of searching: slot-clock acquisition on noise and the codeword synchronisers' SEARCH.

While no signal is locked the receivers search, and a search much slower than real time makes
an offline pass with long stretches of noise (before the link comes up, clouds, pointing losses)
take hours, and a real-time receiver drop data. Measured:

* ``slot_clock_noise``: :class:`SlotClockRecovery` pushed a stream of background-only time tags
  (nb photons per slot, no signal) for ``--windows`` acquisition windows; seconds and the
  real-time factor (seconds of compute per second of tags). Every window is refused. Also with
  the FFT pre-check and the screen disabled (every window through the exact candidate search,
  as before a3b4766).
* ``slot_clock_weak_tone``: the same on a signal too weak to acquire (16-PPM ns 0.3, 128-PPM
  ns 0.6, nb 0.1), whose slot tone passes the pre-check and whose guard fails: exact sums only
  where the screen (``_tone_screen``) puts the peak, and at every candidate (as before it).
* ``codeword_search``: one SEARCH period of :class:`CodewordSync` (the time-tag receiver: the
  slot offsets +-guard/2, and the full search over all P offsets) and of the APD receiver's
  :class:`SlotCSMSync` (all P slot phases), on random counts / LLRs, best of ``--repeats``; with
  the signal duration of one period at 1 ns slots.

    python bench/bench_acquisition.py          # bench/results/acquisition_<date>.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # run as a script from anywhere

from modem import backend as be  # noqa: E402
from modem.fec.scppm import SCPPMCode  # noqa: E402
from modem.sample_receiver import SlotCSMSync  # noqa: E402
from modem.sync.codeword_sync import CodewordSync, CodewordSyncConfig  # noqa: E402
from modem.sync import slot_clock  # noqa: E402
from modem.sync.slot_clock import SlotClockConfig, SlotClockRecovery  # noqa: E402
from modem.sync.timetags import TimeTagConfig, simulate_time_tags  # noqa: E402

SLOT_PS = 1000.0


def slot_clock_noise(M: int, nb: float, windows: int, seed: int = 1, precheck: bool = True, screen: bool = True,
                     ns: float = 0.0) -> dict:
    code = SCPPMCode(M=M, rate="1/2")
    cfg = SlotClockConfig.from_code(code, SLOT_PS)
    n_sym = windows * cfg.acq_symbols
    rng = np.random.default_rng(seed)
    pulses = np.zeros((n_sym, cfg.P), np.uint8)
    if ns > 0:
        pulses[np.arange(n_sym), rng.integers(0, M, n_sym)] = 1
    t = simulate_time_tags(pulses.reshape(-1), ns, nb, rng, TimeTagConfig(slot_width_ps=SLOT_PS)).t_ps
    rec = SlotClockRecovery(cfg)
    saved = slot_clock._tone_bound, slot_clock._tone_screen
    if not precheck:
        slot_clock._tone_bound = lambda *a: float("inf")
    if not screen:                                              # every candidate's exact sum
        slot_clock._tone_screen = lambda x, f, *a: (np.zeros(f.size), float("inf"))
    try:
        rec.push(t[: t.size // 3], rec.initial_state())         # warm-up (compilation), same path
        t0 = time.perf_counter()
        out, st = rec.push(t, rec.initial_state())
        sec = time.perf_counter() - t0
    finally:
        slot_clock._tone_bound, slot_clock._tone_screen = saved
    span = float(t[-1] - t[0]) * 1e-12
    return {"M": M, "nb": nb, "ns": ns, "precheck": precheck, "screen": screen, "acq_symbols": cfg.acq_symbols,
            "windows_refused": st.failed_windows, "acquisitions": st.acquisitions, "tags": int(t.size),
            "seconds": sec, "stream_s": span, "real_time_factor": sec / span}


def _best(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def codeword_search(M: int, repeats: int) -> dict:
    code = SCPPMCode(M=M, rate="1/2")
    rng = np.random.default_rng(M)
    cs = CodewordSync(CodewordSyncConfig(code, 1.9, 0.1))
    per, L = cs.cfg.period, cs.cfg.pattern.size
    win = rng.poisson(0.25, (per + L, code.slots_per_symbol)).astype(np.uint16)
    near, full = cs._near[1], cs._full[1]
    apd = SlotCSMSync(code)
    llr = np.clip(rng.normal(-2.0, 3.0, apd.need), -40, 40)
    period_s = per * code.slots_per_symbol * SLOT_PS * 1e-12
    r = {"M": M, "period_symbols": per, "period_s_at_1ns": period_s, "near_offsets": int(near.size),
         "timetag_near_s": _best(lambda: cs._search_scores(win, near), repeats),
         "timetag_full_s": _best(lambda: cs._search_scores(win, full), repeats),
         "apd_all_phases_s": _best(lambda: apd.scores(llr), repeats)}
    for k in ("timetag_near_s", "timetag_full_s", "apd_all_phases_s"):
        r[k.replace("_s", "_real_time_factor")] = r[k] / period_s
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    noise = [slot_clock_noise(M, 0.1, args.windows, precheck=p, screen=p) for M in (16, 128) for p in (True, False)]
    weak = [slot_clock_noise(M, 0.1, args.windows, screen=sc, ns=ns) for M, ns in ((16, 0.3), (128, 0.6))
            for sc in (True, False)]
    for r in noise + weak:
        print(f"slot clock, {r['M']:3d}-PPM ns {r['ns']} nb {r['nb']}, pre-check {r['precheck']}, "
              f"screen {r['screen']}: {r['windows_refused']} windows refused, {r['acquisitions']} acquired, "
              f"{r['seconds']:.3f} s for {r['stream_s'] * 1e3:.2f} ms of tags ({r['real_time_factor']:.1f}x real time)")
    search = [codeword_search(M, args.repeats) for M in (16, 64, 128)]
    for r in search:
        print(f"SEARCH period, {r['M']:3d}-PPM: time tags +-{r['near_offsets'] // 2} slots "
              f"{r['timetag_near_s'] * 1e3:.1f} ms, all offsets {r['timetag_full_s'] * 1e3:.1f} ms; "
              f"APD all phases {r['apd_all_phases_s'] * 1e3:.1f} ms (period {r['period_s_at_1ns'] * 1e6:.0f} us)")
    report = {"benchmark": "acquisition_search_cost", "date": dt.date.today().isoformat(),
              "backend_info": be.backend_info("cpu"),
              "command": " ".join(["python3 bench/bench_acquisition.py"] + list(sys.argv[1:] if argv is None else argv)),
              "slot_clock_noise": noise, "slot_clock_weak_tone": weak, "codeword_search": search}
    out = args.out or ROOT / "bench" / "results" / f"acquisition_{report['date']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
