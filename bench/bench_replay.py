#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Replay throughput of a recorded SCPPM pass (``modem decode``), per backend and ``--decode-batch``.

    PYTHONPATH=. python3 bench/bench_replay.py [--scale 50] [--backend cpu,gpu] [--decode-batch 1,64,256,1024]
                                               [--cpu-decode-batch 1]

Generates (in a temporary folder) the ``snspd16`` preset pass without its cloud, ``--scale`` times
the shipped capture's packets (~38 x scale 16-PPM rate-1/2 codewords, ~6000 time tags each), as
HDF5. Decodes it once to warm up (Numba JIT, kernel compilation), then once per (backend,
decode_batch) with :func:`modem.offline.decode_capture` (``--decode-batch`` on the GPU,
``--cpu-decode-batch`` on the CPU), and reports for each

* ``info_bits_per_s``: information bits of the decoded codewords (k = 7560 each) per second of
  wall time of the whole replay (file reading, slot clock, codeword sync, decoder, framing);
* ``decoder_s``, ``decoder_calls``, ``codewords_per_call``: the time spent in the SCPPM decoder
  (its results are host arrays, so a GPU decoder call has synchronised when it returns) and how
  many calls it took; ``rest_s`` the wall time outside it (the sequential CPU stages);
* ``frames_sha256``: the decoded frames, equal for every run (``same_frames``).

Writes bench/results/replay_<backends>_<date>.json naming the device(s), commit and parameters.
Never asserts.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@contextlib.contextmanager
def _decoder_spy():
    """Wrap ``SCPPMReceiver.receive_stream`` (class level) while open: (seconds, codewords) per call."""
    from modem.fec.scppm.decoder import SCPPMReceiver
    log = []
    receive = SCPPMReceiver.receive_stream

    def timed(self, counts, restart=None):
        t0 = time.perf_counter()
        out = receive(self, counts, restart)
        log.append((time.perf_counter() - t0, len(counts)))
        return out

    SCPPMReceiver.receive_stream = timed
    try:
        yield log
    finally:
        SCPPMReceiver.receive_stream = receive


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=50, help="times the shipped capture's packets (default 50)")
    ap.add_argument("--backend", default="cpu,gpu", help="comma-separated backends (gpu skipped where unusable)")
    ap.add_argument("--decode-batch", default="1,64,256,1024",
                    help="comma-separated decode_batch values on the GPU (default 1,64,256,1024)")
    ap.add_argument("--cpu-decode-batch", default="1",
                    help="comma-separated decode_batch values on the CPU (default 1: its decoder is as fast "
                         "per codeword at any batch size)")
    ap.add_argument("--repeats", type=int, default=1, help="timed decodes per point (the best is kept)")
    ap.add_argument("--capture", help="decode this pass instead of generating one")
    ap.add_argument("--no-write", action="store_true", help="print only, write no JSON file")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = ap.parse_args(argv)
    from modem import backend as be
    from modem.offline import decode_capture

    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    if "gpu" in backends and not be.gpu_available():
        print(f"gpu skipped: {be.unavailable_reason()}", flush=True)
        backends.remove("gpu")
    batches = {"gpu": [int(b) for b in args.decode_batch.split(",") if b.strip()],
               "cpu": [int(b) for b in args.cpu_decode_batch.split(",") if b.strip()]}
    with tempfile.TemporaryDirectory() as tmp, _decoder_spy() as log:
        path = args.capture
        if path is None:
            from modem.cli import main as cli
            path = os.path.join(tmp, "pass.h5")
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):        # its manifest entry
                cli(["capture", "generate", "--preset", "snspd16", "--scale", str(args.scale), "--cloud-ms", "0",
                     "--seed", "7", path])
            print(f"generated {path} in {time.perf_counter() - t0:.1f} s", flush=True)
        runs, devices, frames = [], {}, set()
        for name in backends:
            launcher = be.fec_launcher(name)
            devices[name] = be.launcher_info(launcher)
            decode_capture("captures/snspd16_pass.h5", launcher=launcher, decode_batch=8)   # warm-up
            for n in batches[name]:
                best = None
                for _ in range(max(1, args.repeats)):
                    log.clear()
                    rep = decode_capture(path, launcher=launcher, decode_batch=n)
                    dec_s = sum(t for t, _ in log)
                    cws = sum(c for _, c in log)
                    wall = rep["throughput"]["wall_s"]
                    row = {"backend": name, "decode_batch": n, "wall_s": wall,
                           "info_bits": rep["throughput"]["decoded_info_bits"],
                           "info_bits_per_s": rep["throughput"]["decoded_info_bits"] / wall,
                           "decoder_s": dec_s, "rest_s": wall - dec_s, "decoder_calls": len(log),
                           "codewords_per_call": cws / max(1, len(log)), "codewords": cws,
                           "decoder_info_bits_per_s": rep["throughput"]["decoded_info_bits"] / dec_s if dec_s else None,
                           "frames_good": rep["frames"]["good"], "frames_bad": rep["frames"]["bad"],
                           "frames_sha256": rep["frames"]["frames_sha256"],
                           "capture_duration_s": rep["throughput"]["capture_duration_s"]}
                    if best is None or row["wall_s"] < best["wall_s"]:
                        best = row
                frames.add(best["frames_sha256"])
                runs.append(best)
                print(f"{name:4s} decode_batch {n:5d}: {best['info_bits_per_s'] / 1e6:8.3f} Mb/s replay, decoder "
                      f"{best['decoder_s']:.2f} s in {best['decoder_calls']} calls "
                      f"({best['codewords_per_call']:.0f} codewords each), rest {best['rest_s']:.2f} s, "
                      f"frames {best['frames_good']} good {best['frames_bad']} bad", flush=True)
    out = {"benchmark": "replay", "date": dt.date.today().isoformat(), "commit": be.git_commit(),
           "devices": devices,
           "params": {"capture": args.capture or f"snspd16 preset, --scale {args.scale}, no cloud, seed 7",
                      "decode_batch": batches, "repeats": args.repeats},
           "same_frames": len(frames) <= 1, "runs": runs}
    if len(frames) > 1:
        print("WARNING: the runs decoded different frames", flush=True)
    if args.json:
        print(json.dumps(out))
    if not args.no_write and runs:
        os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
        p = os.path.join(ROOT, "bench", "results", f"replay_{'_'.join(backends)}_{out['date']}.json")
        with open(p, "w") as fh:
            json.dump(out, fh, indent=2)
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
