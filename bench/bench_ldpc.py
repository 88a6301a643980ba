# SPDX-License-Identifier: Apache-2.0
"""DVB-S2 BCH+LDPC decode throughput in information bits (K_bch) per second.

Run ``python bench/bench_ldpc.py`` to write ``bench/results/ldpc_cpu_<date>.json`` (machine,
commit, parameters, iterations mean, FER), or ``python -m pytest bench/bench_ldpc.py
--benchmark-only`` for pytest-benchmark statistics. ``--algorithms minsum minsum-serial`` times
the fast layer-parallel 16-bit kernel and the float32 check-by-check kernel interleaved (A/B in
the same process, best of ``--repeats``); ``--only normal-1/2`` restricts the codes.

The 20 Mb/s requirement (issue 3, point 5) is the normal 1/2 row at Es/N0 1.4 dB: the operating
point of tests/test_dvbs2_accuracy.py (QEF 1.0 dB + 0.4 dB, QPSK convention), 50 iterations max.

Channel: BPSK per coded bit with the QPSK Es/N0 convention (each coded bit sees SNR = Es/N0 of
the QPSK symbol; LLR = 2y/sigma^2), the convention of the EN 302 307-1 Table 13 QEF figures and
of the xdsopl/LDPC testbench the reference quotes (normal 1/2 at Es/N0 1.2 dB, 9/10 at 6.6 dB,
short 1/2 at 1.2 dB). The timed call is the full ``code.decode`` (LDPC layered min-sum with early
termination + BCH decoding + validation), warm-up (Numba compilation and one full call) excluded.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run as a script from anywhere

from modem import backend as be
from modem.gpu.bench import ldpc_bench_input
from modem.fec import dvbs2

# (frame, rate, QPSK Es/N0 dB, max_iter, frames per call)
CONFIGS = [
    ("normal", "1/2", 1.2, 50, 256),
    ("normal", "1/2", 1.4, 50, 256),     # the accuracy-test operating point (QEF + 0.4 dB)
    ("normal", "1/2", 1.5, 50, 256),
    ("normal", "9/10", 6.6, 50, 256),
    ("short", "1/2", 1.2, 50, 512),
]


def measure(frame, rate, esn0, max_iter, frames, repeats=3, algorithms=("minsum",)):
    """Time ``code.decode`` for each algorithm, interleaved (A, B, A, B, ...); one result dict each."""
    code, u, cw, llr = ldpc_bench_input(frame, rate, esn0, frames)
    for alg in algorithms:       # warm-up: compile, then one untimed full call (thread pool, first touch)
        code.decode(llr[:2], max_iter=2, algorithm=alg)
        code.decode(llr, max_iter=max_iter, algorithm=alg)
    times = {a: [] for a in algorithms}
    first = {}
    for _ in range(repeats):
        for alg in algorithms:
            t0 = time.perf_counter()
            r = code.decode(llr, max_iter=max_iter, algorithm=alg)
            times[alg].append(time.perf_counter() - t0)
            first.setdefault(alg, r)
    out = []
    for alg in algorithms:
        r = first[alg]
        best = min(times[alg])
        out.append({
            "frame": frame, "rate": rate, "k": code.k, "n": code.n, "esn0_db_qpsk": esn0,
            "esn0_db_per_bit": round(esn0 - 10 * np.log10(2.0), 4),
            "max_iter": max_iter, "algorithm": alg, "frames_per_call": frames, "repeats": repeats,
            "raw_ber": float(np.mean((llr < 0) != cw)),
            "seconds_per_call": times[alg], "info_bits_per_s_best": frames * code.k / best,
            "info_bits_per_s_median": frames * code.k / float(np.median(times[alg])),
            "iterations_mean": float(r.iterations.mean()), "iterations_max_cap": max_iter,
            "frame_errors": int(np.count_nonzero(np.any(r.u_hat != u, axis=1))),
            "parity_failures": int(np.count_nonzero(~r.parity_ok)),
        })
    return out


DECODERS = {
    "minsum": "layered normalized min-sum (per-code scale: 0.8 for check degree >= 7, 0.875 below), 16-bit "
              "fixed point (frame LLRs scaled to mean |llr| 1024), one frame per worker thread, the 360 checks "
              "of a layer in SIMD lanes, early termination on the syndrome; then BCH",
    "minsum-serial": "layered normalized min-sum, float32, check by check, 32 frames per worker thread in SIMD "
                     "lanes with per-frame early termination and lane refill; then BCH",
    "sum-product": "layered sum-product (tanh rule), float64, one frame per thread; then BCH",
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--algorithms", nargs="+", default=["minsum"], choices=list(DECODERS),
                    help="decoders to time, interleaved in the same process (default: minsum)")
    ap.add_argument("--only", nargs="+", default=None, metavar="FRAME-RATE",
                    help="restrict to these codes, e.g. normal-1/2 short-1/2")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    results = []
    for cfg in CONFIGS:
        if args.only and f"{cfg[0]}-{cfg[1]}" not in args.only:
            continue
        for res in measure(*cfg, repeats=args.repeats, algorithms=tuple(args.algorithms)):
            print(f"{res['frame']:6s} {res['rate']:5s} Es/N0={res['esn0_db_qpsk']:4.1f} dB {res['algorithm']:13s}"
                  f" it_mean={res['iterations_mean']:5.2f}  FE={res['frame_errors']}/{res['frames_per_call']}"
                  f"  {res['info_bits_per_s_best'] / 1e6:7.2f} Mb/s (best), {res['info_bits_per_s_median'] / 1e6:7.2f}"
                  f" Mb/s (median)", flush=True)
            results.append(res)
    report = {"benchmark": "dvbs2_ldpc_decode", "date": dt.date.today().isoformat(),
              "backend_info": be.backend_info("cpu"), "channel": "BPSK per bit, QPSK Es/N0 convention",
              "command": " ".join(["python3 bench/bench_ldpc.py"] + list(sys.argv[1:] if argv is None else argv)),
              "decoders": {a: DECODERS[a] for a in args.algorithms}, "results": results}
    out = args.out or Path(__file__).parent / "results" / f"ldpc_cpu_{report['date']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


# ---------------------------------------------------------------------------- pytest-benchmark
try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:
    @pytest.mark.parametrize("frame,rate,esn0,max_iter,frames", CONFIGS)
    def test_bench_decode(benchmark, frame, rate, esn0, max_iter, frames):
        code, u, cw, llr = ldpc_bench_input(frame, rate, esn0, frames)
        code.decode(llr[:2], max_iter=2)
        r = benchmark(code.decode, llr, max_iter=max_iter)
        benchmark.extra_info["info_bits_per_call"] = frames * code.k
        benchmark.extra_info["iterations_mean"] = float(r.iterations.mean())

    def test_bench_encode(benchmark):
        code = dvbs2.code("normal", "1/2")
        u = np.random.default_rng(1).integers(0, 2, (64, code.k), dtype=np.uint8)
        code.encode(u[:1])
        benchmark(code.encode, u)
        benchmark.extra_info["info_bits_per_call"] = 64 * code.k


if __name__ == "__main__":
    main()
