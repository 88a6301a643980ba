# SPDX-License-Identifier: Apache-2.0
"""DVB-S2 LDPC+BCH FER curves on AWGN: Es/N0 at FER 1e-2 vs the standard's QEF thresholds.

Normal frames, rates 1/4, 1/2, 3/4, 9/10, min-sum (decoder default per-code scale, max 50 iterations)
and, for 1/2, sum-product. Channel: coherent BPSK, one code bit per symbol, LLR = 2y/sigma^2,
Es/N0 = 1/(2 sigma^2). QEF: EN 302 307-1 Table 13 (QPSK), converted to per-bit terms as
Es/N0(BPSK) = Es/N0(QPSK) - 10 log10 2 (Gray QPSK = two BPSK channels).

Each curve is swept downward in 0.05 dB steps from QEF + 0.3 dB (sum-product: from the min-sum
crossing - 0.1 dB) until FER >= 0.2. A point stops at ``--max-fe`` frame errors or ``--frames``
frames. The 1e-2 crossing is interpolated linearly in (Es/N0, log10 FER) between the last point
with FER >= 1e-2 and the first point above it with FER < 1e-2; a zero-error point enters as
FER = 0.5/N (stated in the JSON). Confidence: each point carries an exact (Clopper-Pearson) 95 %
interval; with the default 320 min-sum frames (64 sum-product) the crossing is good to about
+-0.05 dB (one grid step; the waterfall falls a decade in < 0.1 dB).

    python bench/ldpc_fer_curves.py            # about 5-10 min on 2 cores; writes bench/results/ldpc_fer_<date>.json
    python bench/ldpc_fer_curves.py --quick    # smoke run, nothing written
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run as a script from anywhere

import numpy as np  # noqa: E402
from scipy.stats import binomtest  # noqa: E402

from modem import backend as be  # noqa: E402
from modem.fec import dvbs2  # noqa: E402

QEF_QPSK_DB = {"1/4": -2.35, "1/2": 1.00, "3/4": 4.03, "9/10": 6.42}   # EN 302 307-1 Table 13
QPSK_TO_BPSK_DB = -10.0 * math.log10(2.0)
TARGET = 1e-2
BATCH = 64


def point(c, esn0_db, algorithm, max_frames, max_fe, seed):
    rng = np.random.default_rng([seed, int(round(esn0_db * 1000)) & 0xFFFF, c.k, algorithm == "minsum"])
    sigma = math.sqrt(0.5 * 10.0 ** (-esn0_db / 10.0))
    fe = frames = raw_err = 0
    iters = []
    t0 = time.perf_counter()
    batch = BATCH if algorithm == "minsum" else 16
    while frames < max_frames and fe < max_fe:
        m = min(batch, max_frames - frames)
        u = rng.integers(0, 2, (m, c.k), dtype=np.uint8)
        cw = c.encode(u)
        y = (1.0 - 2.0 * cw) + sigma * rng.standard_normal(cw.shape)
        r = c.decode((2.0 / sigma**2) * y, max_iter=50, algorithm=algorithm)
        fe += int(np.count_nonzero(np.any(r.u_hat != u, axis=1)))
        raw_err += int(np.count_nonzero((y < 0) != (cw == 1)))
        iters.append(r.iterations)
        frames += m
    ci = binomtest(fe, frames).proportion_ci(confidence_level=0.95, method="exact")
    return {"esn0_bpsk_db": round(esn0_db, 4), "frames": frames, "frame_errors": fe, "fer": fe / frames,
            "fer_ci95": [ci.low, ci.high], "raw_ber": raw_err / (frames * c.n),
            "mean_iterations": float(np.concatenate(iters).mean()), "seconds": time.perf_counter() - t0}


def sweep(rate, algorithm, start_db, max_frames, max_fe, seed, max_points=14):
    c = dvbs2.code("normal", rate)
    pts = []
    db = start_db
    for _ in range(max_points):
        p = point(c, db, algorithm, max_frames, max_fe, seed)
        pts.append(p)
        print(f"  {rate:>5} {algorithm:>11} {db:+7.2f} dB  {p['frame_errors']:4d}/{p['frames']:<5d} "
              f"FER {p['fer']:.4f}  raw BER {p['raw_ber']:.4f}  it {p['mean_iterations']:5.1f}  "
              f"{p['seconds']:5.1f} s", flush=True)
        if p["fer"] >= 0.2:
            break
        db = round(db - 0.05, 4)
    return sorted(pts, key=lambda p: p["esn0_bpsk_db"])


def crossing(pts):
    """Es/N0 where FER crosses 1e-2 (log-linear interpolation); None if not bracketed."""
    for lo, hi in zip(pts, pts[1:]):
        if lo["fer"] >= TARGET > hi["fer"]:
            f_lo = math.log10(lo["fer"])
            f_hi = math.log10(max(hi["fer"], 0.5 / hi["frames"]))
            x0, x1 = lo["esn0_bpsk_db"], hi["esn0_bpsk_db"]
            if f_hi >= math.log10(TARGET):
                return x1
            return x0 + (math.log10(TARGET) - f_lo) * (x1 - x0) / (f_hi - f_lo)
    return None


def git_sha():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=320, help="max frames per min-sum point")
    ap.add_argument("--sp-frames", type=int, default=64, help="max frames per sum-product point")
    ap.add_argument("--max-fe", type=int, default=40, help="stop a point at this many frame errors")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rates", default="1/4,1/2,3/4,9/10")
    ap.add_argument("--no-sp", action="store_true", help="skip the sum-product curve")
    ap.add_argument("--quick", action="store_true", help="smoke run (1/2 only, few frames), nothing written")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args(argv)
    rates = a.rates.split(",")
    if a.quick:
        rates, a.frames, a.sp_frames, a.max_fe, a.no_sp = ["1/2"], 64, 16, 10, True
    t0 = time.perf_counter()
    curves = []
    for rate in rates:
        qef = QEF_QPSK_DB[rate] + QPSK_TO_BPSK_DB
        pts = sweep(rate, "minsum", round(qef + 0.3, 2), a.frames, a.max_fe, a.seed)
        x = crossing(pts)
        curves.append({"rate": rate, "algorithm": "minsum", "scale": dvbs2.code("normal", rate).minsum_scale, "max_iter": 50,
                       "qef_esn0_qpsk_db": QEF_QPSK_DB[rate], "qef_esn0_bpsk_db": round(qef, 4),
                       "esn0_at_fer_1e-2_db": x, "gap_to_qef_db": None if x is None else x - qef,
                       "points": pts})
        if rate == "1/2" and not a.no_sp:
            start = round((x if x is not None else qef) - 0.1, 2)
            sp = sweep(rate, "sum-product", start, a.sp_frames, min(a.max_fe, 20), a.seed)
            xs = crossing(sp)
            curves.append({"rate": rate, "algorithm": "sum-product", "max_iter": 50,
                           "qef_esn0_qpsk_db": QEF_QPSK_DB[rate], "qef_esn0_bpsk_db": round(qef, 4),
                           "esn0_at_fer_1e-2_db": xs, "gap_to_qef_db": None if xs is None else xs - qef,
                           "minsum_loss_db": None if (x is None or xs is None) else x - xs,
                           "points": sp})
    elapsed = time.perf_counter() - t0
    print("\nrate   decoder      QEF(QPSK)  QEF(BPSK)  Es/N0@FER1e-2  gap to QEF")
    for cv in curves:
        x = cv["esn0_at_fer_1e-2_db"]
        xs = "n/a" if x is None else f"{x:+.2f}"
        g = "n/a" if x is None else f"{cv['gap_to_qef_db']:+.2f}"
        print(f"{cv['rate']:>5}  {cv['algorithm']:>11}  {cv['qef_esn0_qpsk_db']:+8.2f}  "
              f"{cv['qef_esn0_bpsk_db']:+8.2f}  {xs:>13}  {g:>10}")
        if "minsum_loss_db" in cv and cv["minsum_loss_db"] is not None:
            print(f"       min-sum loss vs sum-product at FER 1e-2: {cv['minsum_loss_db']:.2f} dB")
    doc = {"benchmark": "ldpc_fer_curves", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
           "git_sha": git_sha(), "backend_info": be.backend_info("cpu"),
           "command": " ".join(["python3 bench/ldpc_fer_curves.py"] + list(sys.argv[1:] if argv is None else argv)),
           "elapsed_s": elapsed,
           "params": {"frame": "normal", "channel": "coherent BPSK on AWGN, LLR = 2y/sigma^2",
                      "qef_source": "ETSI EN 302 307-1 V1.4.1 Table 13 (QPSK, PER < 1e-7, 50 iterations)",
                      "qef_conversion": "Es/N0(BPSK) = Es/N0(QPSK) - 10 log10 2 (-3.0103 dB)",
                      "frames_per_point_minsum": a.frames, "frames_per_point_sum_product": a.sp_frames,
                      "max_frame_errors_per_point": a.max_fe, "step_db": 0.05, "seed": a.seed,
                      "crossing": "log-linear interpolation; zero-error point taken as FER = 0.5/N",
                      "confidence": "per-point exact 95% CI in fer_ci95; crossing about +-0.05 dB"},
           "curves": curves}
    if a.quick:
        print(f"quick run, nothing written ({elapsed:.1f} s)")
        return
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"ldpc_fer_{dt.date.today().isoformat()}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path} ({elapsed:.1f} s)")


if __name__ == "__main__":
    main()
