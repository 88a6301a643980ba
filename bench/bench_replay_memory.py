#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Peak memory of offline replay: the shipped 16-PPM capture vs a generated one ten times larger.

    PYTHONPATH=. python3 bench/bench_replay_memory.py [--scale 10] [--chunk 65536 262144]

Generates (in a temporary folder) the ``snspd16`` preset pass (same link, cloud, detector) with
enough packets for at least ``scale`` times the shipped capture's time tags, as HDF5 and PTU T2, then decodes the shipped capture and the large
one, each in a fresh Python process, and measures in that process

* ``ru_maxrss`` (peak resident set size, resource.getrusage) after the imports and after decoding
  (the difference is what the decode added beyond the import-time peak; numba/llvmlite, SciPy and
  h5py make the import peak ~300 MiB), and
* the resident-set high-water mark during ``decode_capture`` alone (Linux: ``/proc/self/clear_refs``
  resets ``VmHWM`` after the imports), and
* the tracemalloc peak of Python/NumPy allocations during ``decode_capture`` alone.

Writes bench/results/replay_memory_<date>.json. Never asserts.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CHILD = r"""
import json, resource, sys, time, tracemalloc
import modem.offline, modem.receiver, modem.io, h5py, ptufile, numpy   # imports before the baseline
from modem.offline import decode_capture
path, chunk = sys.argv[1], int(sys.argv[2])
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return None
try:                                   # Linux: reset the high-water mark to the current RSS
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    hwm_ok = True
except OSError:
    hwm_ok = False
rss_start = status("VmRSS")
# numba functions are cached on disk (cache=True): the decode compiles nothing after a first run
tracemalloc.start()
t = time.perf_counter()
rep = decode_capture(path, chunk=chunk)
wall = time.perf_counter() - t
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
hwm = status("VmHWM") if hwm_ok else None
print(json.dumps({"rss_before_decode_mib": rss_start, "rss_hwm_during_decode_mib": hwm,
                  "rss_hwm_added_by_decode_mib": None if hwm is None else hwm - rss_start,
                  "rss_after_imports_mib": rss0 / 1024, "rss_peak_mib": rss1 / 1024,
                  "rss_added_by_decode_mib": (rss1 - rss0) / 1024, "tracemalloc_peak_mib": peak / 2**20,
                  "wall_s": wall, "tags": rep["photons"]["tags"], "frames_good": rep["frames"]["good"],
                  "packets": rep["packets"]["count"], "payload_sha256": rep["packets"]["payload_sha256"]}))
"""


def measure(path: str, chunk: int) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", CHILD, path, str(chunk)], capture_output=True, text=True,
                         env=env, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["file"] = os.path.relpath(path, ROOT) if path.startswith(ROOT) else os.path.basename(path)
    r["file_bytes"] = os.path.getsize(path)
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--chunk", type=int, nargs="+", default=[65536, 262144],
                    help="records per chunk, one run per value (default 65536 and 262144, the decoder's)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args(argv)
    from dataclasses import replace

    from modem.backend import backend_info
    from modem.io import open_capture
    from modem.io.generate import PRESETS, generate_scppm_pass, write_pass
    chunks = args.chunk
    small = os.path.join(ROOT, "captures", "snspd16_pass.h5")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        spec = PRESETS["snspd16"]
        with open_capture(small) as cap:
            small_tags = cap.n_records
        # the shipped pass is mostly idle frames around the cloud: grow the payload until the
        # generated pass holds at least `scale` times the shipped one's time tags
        n_packets = spec.n_packets * args.scale
        while True:
            g = generate_scppm_pass(replace(spec, n_packets=n_packets))
            ratio = g.t_ps.size / small_tags
            if ratio >= args.scale:
                break
            n_packets = max(n_packets + 1, int(n_packets * args.scale / ratio * 1.03) + 1)
            del g
        paths = {"hdf5": os.path.join(tmp, f"snspd16_x{args.scale}.h5"),
                 "ptu-t2": os.path.join(tmp, f"snspd16_x{args.scale}.ptu")}
        for p in paths.values():
            write_pass(g, p)
        n_tags, payload = int(g.t_ps.size), g.payload_sha256
        del g
        runs = [(c, label, p) for c in chunks
                for label, p in [("shipped", small), ("shipped", os.path.join(ROOT, "captures", "snspd16_pass.ptu")),
                                 (f"x{args.scale}", paths["hdf5"]), (f"x{args.scale}", paths["ptu-t2"])]]
        for chunk, label, p in runs:
            r = measure(p, chunk)
            r["capture"] = label
            r["chunk_records"] = chunk
            if label != "shipped":
                r["payload_ok"] = r["payload_sha256"] == payload
                r["generated_tags"] = n_tags
                r["n_packets"] = n_packets
            results.append(r)
            print(f"chunk {chunk:7d} {label:8s} {os.path.basename(p):20s} {r['file_bytes'] / 1e6:7.2f} MB {r['tags']:9d} tags  "
                  f"RSS {r['rss_before_decode_mib']:6.1f} -> peak {r['rss_hwm_during_decode_mib']:6.1f} MiB "
                  f"during decode  "
                  f"tracemalloc peak {r['tracemalloc_peak_mib']:6.1f} MiB  {r['wall_s']:6.2f} s")
    info = backend_info("cpu")
    doc = {"benchmark": "replay_memory", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
           "backend_info": {k: info.get(k) for k in ("backend", "device", "cpu_count", "numpy", "commit", "python")},
           "command": " ".join(["python3 bench/bench_replay_memory.py"] + list(sys.argv[1:] if argv is None else argv)),
           "scale": args.scale, "results": results}
    os.makedirs(args.out, exist_ok=True)
    fn = os.path.join(args.out, f"replay_memory_{dt.date.today().isoformat()}.json")
    with open(fn, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    print(f"wrote {os.path.relpath(fn, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
