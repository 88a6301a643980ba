# SPDX-License-Identifier: Apache-2.0
"""Frame-sync figures: missed sync, false alarm / false lock and acquisition time vs Es/N0.

Monte Carlo for the 32-bit CCSDS ASM 0x1ACFFC1D on calibrated BPSK/AWGN LLRs
(``L = 4 Es/N0 x + N(0, 8 Es/N0)``, positive = bit 0), three rules:

* ``massey``: Massey's optimum metric, known polarity, SEARCH threshold ``--threshold`` (default
  the :class:`~modem.sync.FrameSyncConfig` default);
* ``massey_pf``: the polarity-free Massey metric, same threshold;
* ``massey_lo``: known-polarity Massey with the lower threshold ``--threshold-lo`` (default 8,
  about the per-position false-alarm rate of ``hard4``: a comparison at equal false alarms);
* ``hard4``: hard-decision correlation, at most 4 marker bits in error.

Per rule and Es/N0 it measures

* ``p_miss``: a marker at its true position fails the SEARCH threshold (``n_markers`` markers);
* ``p_fa``: a position of random data passes it (``n_positions`` positions, with the hit count);
* with :class:`~modem.sync.ASMFrameSync` (check_count 2, flywheel 3, slip 1) on ``n_trials``
  streams (random lead of 0..period bits, then ASM + random ``frame_len``-bit frames):
  ``acq_frames_mean``, the mean stream length, in frame periods, consumed up to the end of the
  first frame emitted in LOCK (acquired trials only); ``p_not_acquired`` within ``max_frames``;
  ``p_false_lock``, the first LOCK at a wrong position.

Plus the binomial values for ``hard4``. Not a test: it never asserts. Writes
``bench/results/frame_sync_<date>.json`` and prints a table. ``--quick`` for a smoke run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import erfc
from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run as a script from anywhere

from modem import backend as be  # noqa: E402
from modem.sync import ASM_BITS, ASMFrameSync, FrameSyncConfig, SyncMode, hard_errors, massey_metric  # noqa: E402

RULES = ("massey", "massey_pf", "massey_lo", "hard4")


def llr_awgn(bits, esn0_db, rng):
    g = 10 ** (esn0_db / 10)
    x = 1.0 - 2.0 * np.asarray(bits, dtype=np.float64)
    return 4 * g * x + np.sqrt(8 * g) * rng.standard_normal(x.shape)


def scores(rule, llr):
    if rule == "hard4":
        e, _ = hard_errors(llr)
        return -e.astype(np.float64)
    m, _ = massey_metric(llr, polarity_free=(rule == "massey_pf"))   # massey, massey_lo: known polarity
    return m


def config(rule, frame_len, threshold):
    if rule == "hard4":
        return FrameSyncConfig(frame_len=frame_len, rule="hard", search_max_errors=4, lock_max_errors=8,
                               check_count=2, flywheel=3, slip=1)
    return FrameSyncConfig(frame_len=frame_len, rule="massey", polarity_free=(rule == "massey_pf"),
                           search_threshold=threshold, check_count=2, flywheel=3, slip=1)


def acquisition(rule, esn0_db, frame_len, threshold, n_trials, max_frames, rng):
    sync = ASMFrameSync(config(rule, frame_len, threshold))
    P = 32 + frame_len
    acq, wrong, never = [], 0, 0
    for _ in range(n_trials):
        lead = int(rng.integers(0, P))
        data = rng.integers(0, 2, (max_frames, frame_len), dtype=np.uint8)
        bits = np.concatenate([rng.integers(0, 2, lead, dtype=np.uint8),
                               np.concatenate([np.broadcast_to(ASM_BITS, (max_frames, 32)), data], 1).ravel(),
                               rng.integers(0, 2, 8, dtype=np.uint8)])
        frames, _ = sync.push(llr_awgn(bits, esn0_db, rng), sync.initial_state())
        lock = frames.offset[frames.state == SyncMode.LOCK]
        if lock.size == 0:
            never += 1
            continue
        first = int(lock[0])
        if (first - lead) % P != 0:
            wrong += 1
        acq.append((first + P) / P)
    return {"acq_frames_mean": float(np.mean(acq)) if acq else None,
            "acq_frames_p90": float(np.quantile(acq, 0.9)) if acq else None,
            "p_not_acquired": never / n_trials, "p_false_lock": wrong / n_trials}


def hard4_binomial(esn0_db):
    p = 0.5 * erfc(np.sqrt(10 ** (esn0_db / 10)))          # BPSK raw BER = Q(sqrt(2 Es/N0))
    return {"p_miss_binomial": float(binom.sf(4, 32, p)), "p_fa_binomial": float(binom.cdf(4, 32, 0.5))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--esn0", type=float, nargs="+", default=[-2, -1, 0, 1, 2, 3, 4, 5, 6])
    ap.add_argument("--threshold", type=float, default=FrameSyncConfig(frame_len=1024).search_threshold)
    ap.add_argument("--threshold-lo", type=float, default=8.0)
    ap.add_argument("--n-markers", type=int, default=200_000)
    ap.add_argument("--n-positions", type=int, default=2_000_000)
    ap.add_argument("--n-trials", type=int, default=200)
    ap.add_argument("--frame-len", type=int, default=1024)
    ap.add_argument("--max-frames", type=int, default=30)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--quick", action="store_true", help="tiny run (smoke test)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args(argv)
    if a.quick:
        a.esn0, a.n_markers, a.n_positions, a.n_trials = [0.0, 4.0], 2000, 20000, 5
    rng = np.random.default_rng(a.seed)
    t0 = time.perf_counter()
    rows = []
    hdr = (f"{'Es/N0':>6} {'rule':>9} {'p_miss':>9} {'p_fa/pos':>9} {'(hits)':>7} {'acq frames':>10} "
           f"{'p90':>5} {'not acq':>7} {'false lock':>10}")
    print(hdr)
    print("-" * len(hdr))
    for db in a.esn0:
        marker_llr = llr_awgn(np.broadcast_to(ASM_BITS, (a.n_markers, 32)), db, rng)
        noise_llr = llr_awgn(rng.integers(0, 2, a.n_positions + 31, dtype=np.uint8), db, rng)
        for rule in RULES:
            thr = {"hard4": -4.0, "massey_lo": a.threshold_lo}.get(rule, a.threshold)
            s_m = scores(rule, marker_llr)[:, 0]
            s_f = scores(rule, noise_llr)
            hits = int((s_f >= thr).sum())
            r = {"esn0_db": db, "rule": rule, "search_threshold": thr,
                 "p_miss": float((s_m < thr).mean()), "p_fa_per_position": hits / s_f.size, "fa_hits": hits,
                 "fa_positions": int(s_f.size), "n_markers": a.n_markers}
            r.update(acquisition(rule, db, a.frame_len, thr, a.n_trials, a.max_frames, rng))
            if rule == "hard4":
                r.update(hard4_binomial(db))
            rows.append(r)
            acq = "-" if r["acq_frames_mean"] is None else f"{r['acq_frames_mean']:.2f}"
            p90 = "-" if r["acq_frames_p90"] is None else f"{r['acq_frames_p90']:.1f}"
            print(f"{db:6.1f} {rule:>9} {r['p_miss']:9.2e} {r['p_fa_per_position']:9.2e} {hits:7d} {acq:>10} "
                  f"{p90:>5} {r['p_not_acquired']:7.3f} {r['p_false_lock']:10.3f}", flush=True)
    elapsed = time.perf_counter() - t0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"frame_sync_{dt.date.today().isoformat()}.json"
    doc = {"benchmark": "frame_sync_figures", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
           "backend_info": be.backend_info("cpu"),
           "command": " ".join(["python3 bench/frame_sync_figures.py"] + list(sys.argv[1:] if argv is None else argv)),
           "elapsed_s": elapsed,
           "params": {"marker": "0x1ACFFC1D", "esn0_db": a.esn0, "massey_threshold": a.threshold, "massey_lo_threshold": a.threshold_lo,
                      "hard_max_errors": 4, "n_markers": a.n_markers, "n_positions": a.n_positions,
                      "n_trials": a.n_trials, "frame_len": a.frame_len, "max_frames": a.max_frames,
                      "check_count": 2, "flywheel": 3, "slip": 1, "massey_lock_threshold": 4.0,
                      "hard_lock_max_errors": 8, "seed": a.seed, "quick": a.quick,
                      "channel": "BPSK AWGN, calibrated LLRs"},
           "results": rows}
    if not a.quick:
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {path} ({elapsed:.1f} s)")
    else:
        print(f"quick run, nothing written ({elapsed:.1f} s)")


if __name__ == "__main__":
    main()
