# SPDX-License-Identifier: Apache-2.0
"""Throughput of every chain on one backend, at the issue's target configurations.

    python bench/bench_gpu.py --backend gpu --compare-cpu   # on a GPU machine
    python bench/bench_gpu.py --backend cpu --small         # CPU figures (2-core CI: small batches)

Runs :mod:`modem.gpu.bench` (the code behind ``modem bench``) for SCPPM 16/64/128-PPM rate 1/2
(decoder and slot-counts-to-checked-blocks chain, 0.8 dB above the Poisson capacity limit, max
16 iterations), DVB-S2 normal 1/2 LDPC (Es/N0 1.2 dB QPSK convention, max 50 iterations, with
scikit-commpy's BP decoder as the reference) and the DPSK chain (port energies -> checked frames,
Es/N0 2 dB per channel bit). Each configuration writes
``bench/results/bench_<chain>_<backend>_<date>.json``; this script also writes one summary file
``bench/results/gpu_bench_<backend>_<date>.json`` holding all of them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modem import backend as be  # noqa: E402
from modem.errors import ModemError  # noqa: E402
from modem.gpu import bench  # noqa: E402

TARGETS_BPS = {("scppm", 16): 1e9, ("scppm", 64): 3e8, ("scppm", 128): 3e8, ("ldpc", None): 1e10,
               ("dpsk", None): 2.88e9, ("scppm-chain", None): 6.22e8}


def configs(small: bool, backend: str):
    big = backend == "gpu"
    f_scppm = 8 if small else (2048 if big else 64)
    f_ldpc = 8 if small else (1024 if big else 64)
    for M in (16, 64, 128):
        yield "scppm", dict(M=M, rate="1/2", frames=f_scppm, max_iter=16)
    yield "ldpc", dict(frame="normal", rate="1/2", esn0=1.2, frames=f_ldpc, max_iter=50, commpy_frames=1)
    yield "dpsk", dict(frame="normal", rate="1/2", esn0=2.0, frames=f_ldpc, max_iter=50)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("cpu", "gpu"), default="gpu")
    ap.add_argument("--small", action="store_true", help="small batches (quick CPU run)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compare-cpu", action="store_true", help="GPU run: also time the CPU path (ratios)")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    try:
        info = be.backend_info(be.resolve_backend(args.backend))
    except ModemError as exc:            # e.g. --backend gpu where no GPU is: one line, exit 2
        print(f"bench_gpu: error: {exc}", file=sys.stderr)
        return 2
    summary = {"benchmark": "gpu_bench", "date": dt.date.today().isoformat(), "backend_info": info,
               "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
               "targets_info_bits_per_s": {f"{k[0]}{'' if k[1] is None else '-M' + str(k[1])}": v
                                           for k, v in TARGETS_BPS.items()},
               "reports": []}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"gpu_bench_{args.backend}_{summary['date']}.json"
    for chain, params in configs(args.small, args.backend):
        rep = bench.run(chain, args.backend, compare_cpu=args.compare_cpu, out_dir=args.out_dir, write=False,
                        repeats=args.repeats, **params)
        print("\n".join(bench.summary_lines(rep)[1:]), flush=True)
        summary["reports"].append(rep)
        # written after every configuration: a run stopped at its time limit keeps what it measured
        out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
