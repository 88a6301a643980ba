# SPDX-License-Identifier: Apache-2.0
"""End-to-end Monte-Carlo throughput: ``modem simulate scppm`` and ``modem simulate dpsk``.

A user who draws an error-rate curve waits for the whole loop: random payload, encoder,
channel (Poisson slot counts, or AWGN / the optical pre-amplified DPSK channel), decoder and
error counting. This times exactly the loop the CLI runs (``modem.sim.<chain>.run`` on the
arguments ``modem simulate`` parses), best and median of ``--repeats`` runs after one warm-up
run (Numba compilation), and reports information bits per second end to end and of the
decoder alone (``decode_info_bits_per_s``), with the frame errors (so a run at the wrong
operating point shows).

    python bench/bench_simulate.py                 # bench/results/simulate_<backend>_<date>.json
    python bench/bench_simulate.py --orders 16 --frames 64 --repeats 2 --no-dpsk
    python bench/bench_simulate.py --ns 2 --nb 0.2       # one ns for every order

SCPPM runs by default at 0.8 dB above the Poisson capacity limit of each order (``--gap-db``),
where most codewords decode; a point below threshold times the decoder at its iteration limit.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # run as a script from anywhere

from modem import backend as be  # noqa: E402
from modem.analysis.capacity import ns_capacity_limit  # noqa: E402
from modem.cli import _build_parser  # noqa: E402


def simulate_args(chain: str, options: list[str]):
    """The ``argparse`` namespace ``modem simulate <chain> <options>`` would run (with --json)."""
    return _build_parser().parse_args(["simulate", chain, *options, "--json", "--no-progress"])


def time_simulation(chain: str, options: list[str], repeats: int, warmup_frames: int) -> dict:
    """Best and median over ``repeats`` runs of ``modem simulate <chain> <options>``.

    One run of ``warmup_frames`` frames first (same code, same backend) so that compilation is
    not timed. The decoded results of every run are identical (the seed fixes every draw), so the
    report's error counts come from the last run."""
    args = simulate_args(chain, options)
    mod = importlib.import_module(args._module)
    warm = simulate_args(chain, options)
    warm.frames = warmup_frames
    mod.run(warm)
    reps = [mod.run(args) for _ in range(repeats)]
    rates = [r["info_bits_per_s"] for r in reps]
    dec = [r["decode_info_bits_per_s"] for r in reps if "decode_info_bits_per_s" in r]
    last = reps[-1]
    out = {"chain": chain, "command": "modem simulate " + " ".join([chain, *options, "--json"]),
           "params": last["params"], "backend": last["backend"], "frames": last["frames"],
           "frame_errors": last["frame_errors"], "bit_errors": last["bit_errors"], "iterations_mean": last["iterations_mean"],
           "info_bits": last["info_bits"], "seconds": [r["seconds"] for r in reps],
           "info_bits_per_s_best": max(rates), "info_bits_per_s_median": statistics.median(rates)}
    if dec:
        out["decode_info_bits_per_s_best"] = max(dec)
        out["decoder_share_of_time"] = statistics.median(r["decode_seconds"] / r["seconds"] for r in reps)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", default="16,64,128", help="SCPPM PPM orders, comma separated")
    ap.add_argument("--frames", type=int, default=256, help="SCPPM codewords per run")
    ap.add_argument("--ns", type=float, default=None,
                    help="signal photons per pulse for every order (default: --gap-db above the Poisson "
                         "capacity limit of each order, the operating points of the decoder's sensitivity tests)")
    ap.add_argument("--gap-db", type=float, default=0.8)
    ap.add_argument("--nb", type=float, default=0.2)
    ap.add_argument("--dpsk-frames", type=int, default=24, help="DVB-S2 normal 1/2 frames per DPSK run")
    ap.add_argument("--esn0", default="1.5,2.5", help="DPSK Es/N0 points in dB, comma separated (AWGN)")
    ap.add_argument("--no-dpsk", action="store_true", help="SCPPM only")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    runs = []
    for M in (int(m) for m in args.orders.split(",") if m):
        ns = args.ns if args.ns is not None else \
            round(ns_capacity_limit(M, "1/2", args.nb) * 10 ** (args.gap_db / 10), 4)
        opts = ["--order", str(M), "--rate", "1/2", "--ns", str(ns), "--nb", str(args.nb),
                "--frames", str(args.frames), "--seed", str(args.seed)]
        runs.append(time_simulation("scppm", opts, args.repeats, warmup_frames=8))
    for esn0 in ([] if args.no_dpsk else [e for e in args.esn0.split(",") if e]):
        opts = ["--frame", "normal", "--rate", "1/2", "--channel", "awgn", "--esn0", esn0,
                "--frames", str(args.dpsk_frames), "--seed", str(args.seed)]
        runs.append(time_simulation("dpsk", opts, args.repeats, warmup_frames=1))
    for r in runs:
        dec = r.get("decode_info_bits_per_s_best")
        dec_s = f", decoder alone {dec / 1e6:.2f} Mb/s ({100 * r['decoder_share_of_time']:.0f} % of the time)" \
            if dec else ""
        print(f"{r['command']}: {r['info_bits_per_s_best'] / 1e6:.2f} Mb/s best, "
              f"{r['info_bits_per_s_median'] / 1e6:.2f} median{dec_s}; "
              f"{r['frame_errors']}/{r['frames']} frame errors, {r['iterations_mean']:.1f} iterations mean")
    date = dt.date.today().isoformat()
    backend = runs[0]["backend"] if runs else be.resolve_backend()
    report = {"benchmark": "simulate_end_to_end", "date": date, "backend_info": be.backend_info(backend),
              "command": " ".join(["python3 bench/bench_simulate.py"]
                                  + list(sys.argv[1:] if argv is None else argv)),
              "repeats": args.repeats, "runs": runs}
    print(json.dumps({"runs": [{k: r[k] for k in ("chain", "info_bits_per_s_best", "frame_errors", "frames")}
                               for r in runs]}))
    if not args.no_write:
        out = args.out or ROOT / "bench" / "results" / f"simulate_{backend}_{date}.json"
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
