# SPDX-License-Identifier: Apache-2.0
"""Everything a GPU session has to run for the GPU issue, in one command (writes bench/results/):

    python bench/gpu_validate.py                      # on the GPU machine, from the repository root
    python bench/gpu_validate.py --steps smoke,equivalence --budget 300

Steps (``--steps``, comma-separated, in this order; default all):

``smoke``        ``modem info`` (device, driver, CUDA, CuPy, commit) and ``python -m modem.gpu``:
                 every kernel file compiled by NVRTC on this device (fails fast on a broken source);
``equivalence``  ``pytest -m gpu -rA tests`` (every GPU-marked test: CPU/GPU equivalence, NVRTC
                 compile, pipelines) -> the log, headed by the device line, in
                 ``gpu_equivalence_<date>.txt``;
``bench``        ``bench/bench_gpu.py --backend gpu --compare-cpu`` -> ``gpu_bench_gpu_<date>.json``;
``replay``       ``bench/bench_replay.py --backend cpu,gpu``: ``modem decode`` of a generated 16-PPM pass
                 (~1900 codewords) on the CPU and at ``--decode-batch`` 1, 64, 256, 1024 on the GPU, with the
                 decoder's share of the time -> ``replay_cpu_gpu_<date>.json``;
``ncu``          where Nsight Compute (``ncu``) exists: one profile per main kernel (achieved
                 occupancy, memory throughput, speed of light) -> ``ncu_<kernel>_<date>.txt``.

Each step runs under a time limit (its share of ``--budget`` seconds plus whatever the steps
before it left unused, so that a hang cannot eat a whole lent session and a quick step gives its
time to the next) and streams its output. Steps that fail or time out are reported and the script
goes on; it exits non-zero if any failed. ``--copy-to DIR`` (default ``$OUT`` where that is set)
also copies every result file of this run there. ``MODEM_COMMIT`` names the commit where the tree
is a copy without ``.git``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
STEPS = ("smoke", "equivalence", "bench", "replay", "ncu")
SHARE = {"smoke": 0.10, "equivalence": 0.28, "bench": 0.35, "replay": 0.12, "ncu": 0.15}   # of --budget

NCU_TARGETS = {   # kernel name regex -> modem bench command that launches it
    "ldpc_layered_i16": ["bench", "--chain", "ldpc", "--backend", "gpu", "--frames", "512", "--repeats", "1",
                         "--commpy-frames", "0", "--no-write"],
    "scppm_inner_ext": ["bench", "--chain", "scppm", "--backend", "gpu", "--frames", "1024", "--repeats", "1",
                        "--no-write"],
    "scppm_outer_siso": ["bench", "--chain", "scppm", "--backend", "gpu", "--frames", "1024", "--repeats", "1",
                         "--no-write"],
}


def environment() -> dict:
    """The children's environment: the tree first on PYTHONPATH (kept: carried wheels), GPU backend."""
    pp = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=pp, MODEM_BACKEND="gpu", PYTHONUNBUFFERED="1")


def run_step(cmd, timeout: float, log: Path | None = None, header: str = "") -> int:
    """Run ``cmd`` in the tree, echo its output live, save it to ``log``; 124 on timeout."""
    print("$ " + " ".join(map(str, cmd)) + f"   (limit {timeout:.0f} s)", flush=True)
    t0 = time.monotonic()
    lines: list[str] = []
    with subprocess.Popen(cmd, cwd=ROOT, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as proc:
        try:
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = timeout - (time.monotonic() - t0)
                if left <= 0:
                    raise subprocess.TimeoutExpired(cmd, timeout)
                if sel.select(timeout=min(left, 5.0)):
                    line = proc.stdout.readline()
                    if not line:
                        break
                    lines.append(line)
                    print(line, end="", flush=True)
            rc = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            lines.append(f"\n*** step killed after {timeout:.0f} s (time limit)\n")
            print(lines[-1], flush=True)
            rc = 124
    if log is not None:
        log.write_text(header + "".join(lines))
    print(f"--> exit {rc} in {time.monotonic() - t0:.1f} s\n", flush=True)
    return rc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    ap.add_argument("--budget", type=float, default=540.0, help="seconds for all steps together")
    ap.add_argument("--copy-to", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None,
                    help="also copy the result files there (default $OUT where set)")
    args = ap.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    bad = [s for s in steps if s not in STEPS]
    if bad:
        ap.error(f"unknown step(s) {bad}; known: {', '.join(STEPS)}")
    share = sum(SHARE[s] for s in steps)
    t_start = time.monotonic()

    def limit(step: str) -> float:
        """Seconds for ``step``: the budget left now, less the shares of the steps after it."""
        later = sum(SHARE[s] for s in steps[steps.index(step) + 1:])
        left = args.budget - (time.monotonic() - t_start)
        return max(1.0, left - args.budget * later / share)
    date = dt.date.today().isoformat()
    RESULTS.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    failed = []

    info = subprocess.run([PY, "-m", "modem.cli", "info"], cwd=ROOT, env=environment(), capture_output=True,
                          text=True, timeout=120)
    print(info.stdout + info.stderr, flush=True)
    if info.returncode:
        print("no usable GPU here; nothing to validate")
        return 2
    info_json = json.loads(info.stdout)
    device_line = "device: " + json.dumps(info_json) + "\n\n"
    if info_json.get("commit", "unknown") == "unknown":
        print("WARNING: commit unknown (a copy of the tree without .git): the reports cannot name the code "
              "measured; run as MODEM_COMMIT=<sha> python bench/gpu_validate.py", flush=True)

    if "smoke" in steps and run_step([PY, "-m", "modem.gpu"], limit("smoke")):
        failed.append("smoke (NVRTC compile of kernels/*.cu)")
    if "equivalence" in steps:
        log = RESULTS / f"gpu_equivalence_{date}.txt"
        rc = run_step([PY, "-m", "pytest", "-p", "no:cacheprovider", "-m", "gpu", "-rA", "tests"],
                      limit("equivalence"), log, device_line)
        written.append(log)
        if rc:
            failed.append("equivalence")
    if "bench" in steps:
        out = RESULTS / f"gpu_bench_gpu_{date}.json"
        if run_step([PY, "bench/bench_gpu.py", "--backend", "gpu", "--compare-cpu"], limit("bench"),
                    RESULTS / f"gpu_bench_gpu_{date}.log", device_line):
            failed.append("bench")
        written += [p for p in (out, RESULTS / f"gpu_bench_gpu_{date}.log") if p.exists()]
    if "replay" in steps:
        out = RESULTS / f"replay_cpu_gpu_{date}.json"
        if run_step([PY, "bench/bench_replay.py", "--backend", "cpu,gpu"], limit("replay"),
                    RESULTS / f"replay_cpu_gpu_{date}.log", device_line):
            failed.append("replay")
        written += [p for p in (out, RESULTS / f"replay_cpu_gpu_{date}.log") if p.exists()]
    if "ncu" in steps:
        ncu = shutil.which("ncu")
        if ncu:
            t_ncu, ncu_limit = time.monotonic(), limit("ncu")
            for j, (kernel, cli_args) in enumerate(NCU_TARGETS.items()):
                per = max(1.0, (ncu_limit - (time.monotonic() - t_ncu)) / (len(NCU_TARGETS) - j))
                log = RESULTS / f"ncu_{kernel}_{date}.txt"
                cmd = [ncu, "--kernel-name", f"regex:{kernel}", "--launch-count", "1", "--section", "SpeedOfLight",
                       "--section", "Occupancy", "--section", "MemoryWorkloadAnalysis", "--section", "LaunchStats",
                       PY, "-m", "modem.cli", *cli_args]
                if run_step(cmd, per, log, device_line):
                    failed.append(f"ncu {kernel}")
                written.append(log)
        else:
            print("ncu not found: no profiles (install Nsight Compute for occupancy / memory throughput)")
    if args.copy_to is not None:
        args.copy_to.mkdir(parents=True, exist_ok=True)
        for p in written:
            if p.exists():
                shutil.copy2(p, args.copy_to / p.name)
        print(f"copied {len([p for p in written if p.exists()])} result file(s) to {args.copy_to}")
    print("FAILED: " + ", ".join(failed) if failed else "all steps passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
