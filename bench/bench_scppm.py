# SPDX-License-Identifier: Apache-2.0
"""SCPPM encode / decode throughput in information bits per second.

Run ``python bench/bench_scppm.py`` to write ``bench/results/scppm_<backend>_<date>.json`` (one
object per configuration, naming the machine, commit and parameters), or
``python -m pytest bench/bench_scppm.py --benchmark-only`` for pytest-benchmark statistics.

The decoder runs at the sensitivity operating points of tests/test_scppm_decoder.py: 0.8 dB above
the Poisson PPM capacity limit at nb = 0.1, max_iter 16 (the same cap), exact log-MAP, with
CRC early stopping. Warm-up (Numba compilation) is excluded from the timings.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np

from modem import backend as be
from modem.analysis.capacity import ns_capacity_limit
from modem.channel.poisson import simulate_counts
from modem.fec.scppm import SCPPMCode, SCPPMReceiver, SCPPMTransmitter

GAP_DB = 0.8
MAX_ITER = 16
NB = 0.1


def _setup(M, rate="1/2", frames=64, seed=7):
    code = SCPPMCode(M, rate)
    ns = ns_capacity_limit(M, rate, NB) * 10 ** (GAP_DB / 10)
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 2, (frames, code.k), dtype=np.uint8)
    tx = SCPPMTransmitter(code)
    y = simulate_counts(tx.modulate(u), ns, NB, rng)
    rx = SCPPMReceiver(code, ns=ns, nb=NB, max_iter=MAX_ITER)
    return code, ns, u, tx, rx, y


def measure(M, frames=64, repeats=3):
    code, ns, u, tx, rx, y = _setup(M, frames=frames)
    tx.modulate(u[:2])
    rx.receive(y[:2])                                     # warm-up: compile
    t_enc = min(_time(lambda: tx.modulate(u)) for _ in range(repeats))
    best, res = None, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = rx.receive(y)
        t = time.perf_counter() - t0
        best = t if best is None else min(best, t)
    metric = np.asarray(rx.symbol_counts(y)) * rx.weight
    t_core = min(_time(lambda: rx.decoder.decode(metric)) for _ in range(repeats))
    bits = frames * code.k
    return {
        "chain": "scppm", "M": M, "rate": code.rate, "frames": frames, "ns": ns, "nb": NB,
        "gap_db_above_capacity": GAP_DB, "max_iter": MAX_ITER, "algorithm": "log-MAP",
        "iterations_mean": float(res.iterations.mean()), "crc_ok": int(res.crc_ok.sum()),
        "frame_errors": int((res.u_hat != u).any(1).sum()),
        "encode_info_bits_per_s": bits / t_enc,
        "decode_info_bits_per_s": bits / best,            # receiver: slot counts -> checked blocks
        "decoder_core_info_bits_per_s": bits / t_core,    # iterative decoder alone on symbol metrics
    }


def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --- pytest-benchmark entry points ----------------------------------------------------------------
def _bench_decode(benchmark, M):
    code, ns, u, tx, rx, y = _setup(M, frames=16)
    rx.receive(y[:2])
    res = benchmark(rx.receive, y)
    benchmark.extra_info.update(M=M, info_bits=16 * code.k, iterations_mean=float(res.iterations.mean()))


def test_decode_m16(benchmark):
    _bench_decode(benchmark, 16)


def test_decode_m64(benchmark):
    _bench_decode(benchmark, 64)


def test_decode_m128(benchmark):
    _bench_decode(benchmark, 128)


def test_encode_m16(benchmark):
    code, ns, u, tx, rx, y = _setup(16, frames=16)
    benchmark(tx.modulate, u)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, nargs="+", default=[16, 64, 128])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    info = be.backend_info("cpu")
    rows = []
    for M in a.orders:
        r = measure(M, a.frames)
        r["backend_info"] = info
        rows.append(r)
        print(f"M={M:<4} encode {r['encode_info_bits_per_s'] / 1e6:7.2f} Mb/s   decode {r['decode_info_bits_per_s'] / 1e6:6.3f} Mb/s "
              f"(core {r['decoder_core_info_bits_per_s'] / 1e6:6.3f})  iterations {r['iterations_mean']:.2f}  "
              f"FER {r['frame_errors']}/{r['frames']}", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"scppm_cpu_{dt.date.today().isoformat()}.json"
    path.write_text(json.dumps({"benchmark": "scppm", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
                                "machine": info, "results": rows}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
