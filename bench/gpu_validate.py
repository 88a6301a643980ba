# SPDX-License-Identifier: Apache-2.0
"""Everything a GPU session has to run for the GPU issue, in one command (writes bench/results/):

    python bench/gpu_validate.py            # on the GPU machine, from the repository root

1. ``modem info`` (device, driver, CUDA, CuPy, commit) and ``python -m modem.gpu`` (compile all);
2. ``pytest -m gpu -rA tests/test_gpu_equivalence.py tests/test_kernels_compile.py`` -> the log,
   headed by the device line, in ``bench/results/gpu_equivalence_<date>.txt``;
3. ``bench/bench_gpu.py --backend gpu --compare-cpu`` -> ``bench/results/gpu_bench_gpu_<date>.json``;
4. where Nsight Compute (``ncu``) exists: one profile per main kernel (occupancy, memory
   throughput, speed of light) -> ``bench/results/ncu_<kernel>_<date>.txt``.
Steps that fail are reported and the script goes on; it exits non-zero if any failed.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
ENV = dict(os.environ, PYTHONPATH=str(ROOT), MODEM_BACKEND="gpu")

NCU_TARGETS = {   # kernel name regex -> modem bench command that launches it
    "ldpc_layered_i16": ["bench", "--chain", "ldpc", "--backend", "gpu", "--frames", "512", "--repeats", "1",
                         "--commpy-frames", "0", "--no-write"],
    "scppm_inner_ext": ["bench", "--chain", "scppm", "--backend", "gpu", "--frames", "1024", "--repeats", "1",
                        "--no-write"],
    "scppm_outer_siso": ["bench", "--chain", "scppm", "--backend", "gpu", "--frames", "1024", "--repeats", "1",
                         "--no-write"],
}


def _run(cmd, log=None) -> int:
    print("$ " + " ".join(map(str, cmd)), flush=True)
    res = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    out = res.stdout + res.stderr
    print(out[-4000:], flush=True)
    if log is not None:
        log.write_text(out)
    return res.returncode


def main() -> int:
    date = dt.date.today().isoformat()
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = []
    info = subprocess.run([PY, "-m", "modem.cli", "info"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    print(info.stdout + info.stderr)
    if info.returncode:
        print("no usable GPU here; nothing to validate")
        return 2
    device = json.loads(info.stdout)
    if _run([PY, "-m", "modem.gpu"]):
        failed.append("compile")
    log = RESULTS / f"gpu_equivalence_{date}.txt"
    res = subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", "-m", "gpu", "-rA",
                          "tests/test_gpu_equivalence.py", "tests/test_kernels_compile.py"],
                         cwd=ROOT, env=ENV, capture_output=True, text=True)
    log.write_text(f"device: {json.dumps(device)}\n\n" + res.stdout + res.stderr)
    print(res.stdout[-3000:])
    if res.returncode:
        failed.append("equivalence")
    if _run([PY, "bench/bench_gpu.py", "--backend", "gpu", "--compare-cpu"]):
        failed.append("bench")
    ncu = shutil.which("ncu")
    if ncu:
        for kernel, args in NCU_TARGETS.items():
            cmd = [ncu, "--kernel-name", f"regex:{kernel}", "--launch-count", "1", "--section", "SpeedOfLight",
                   "--section", "Occupancy", "--section", "MemoryWorkloadAnalysis", "--section", "LaunchStats",
                   PY, "-m", "modem.cli", *args]
            if _run(cmd, RESULTS / f"ncu_{kernel}_{date}.txt"):
                failed.append(f"ncu {kernel}")
    else:
        print("ncu not found: no profiles (install Nsight Compute for occupancy / memory throughput)")
    print("FAILED: " + ", ".join(failed) if failed else "all steps passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
