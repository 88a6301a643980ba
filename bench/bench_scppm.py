# SPDX-License-Identifier: Apache-2.0
"""SCPPM encode / decode throughput in information bits per second.

Run ``python bench/bench_scppm.py`` to write ``bench/results/scppm_<backend>_<date>.json`` (one
object per configuration, naming the machine, commit and parameters), or
``python -m pytest bench/bench_scppm.py --benchmark-only`` for pytest-benchmark statistics.

The decoder runs at the sensitivity operating points of tests/test_scppm_decoder.py: 0.8 dB above
the Poisson PPM capacity limit at nb = 0.1, max_iter 16 (the same cap), exact log-MAP, with
CRC early stopping. Warm-up (Numba compilation) is excluded from the timings.

``--reference`` also times the per-codeword reference decoder (``_cpu.turbo_decode``, the log-MAP
path the decoder used before the stage-vectorised one) on the same symbol metrics, alternating
with the decoder in the same process (best and median of ``--repeats``), and checks that both give
the same decisions, CRC flags and iteration counts.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

import numba

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run as a script from anywhere

from modem import backend as be  # noqa: E402
from modem.analysis.capacity import ns_capacity_limit  # noqa: E402
from modem.channel.poisson import simulate_counts  # noqa: E402
from modem.fec.scppm import SCPPMCode, SCPPMReceiver, SCPPMTransmitter, _cpu  # noqa: E402
from modem.framing.crc import CRC32_HPE_POLY  # noqa: E402

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


def _reference_decode(dec, metric):
    """The per-codeword log-MAP reference (_cpu.turbo_decode) with the decoder's parameters and
    chunking; returns (u_hat de-randomized, crc_ok, iterations) like SCPPMDecoder.decode."""
    c = dec.code
    F = metric.shape[0]
    u_hat = np.zeros((F, c.k_hat), np.uint8)
    ok, it = np.zeros(F, bool), np.zeros(F, np.int64)
    _cpu.turbo_decode(metric, dec._edge_bits, dec._ginv, dec._par, c.m, dec._inner_to_mother, c.k_hat, c.k,
                      dec.max_iter, False, 1.0, CRC32_HPE_POLY, min(F, 4 * numba.get_num_threads()), u_hat, ok, it)
    return u_hat[:, : c.k] ^ dec._pn, ok, it


def measure_reference(M, frames=64, repeats=5):
    """Decoder core vs the per-codeword reference, timed alternately on the same metrics."""
    code, ns, u, tx, rx, y = _setup(M, frames=frames)
    metric = np.ascontiguousarray(np.asarray(rx.symbol_counts(y)) * rx.weight)
    dec = rx.decoder
    new, ref = dec.decode(metric[:2]), _reference_decode(dec, metric[:2])      # warm-up: compile
    t_new, t_ref = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        new = dec.decode(metric)
        t_new.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = _reference_decode(dec, metric)
        t_ref.append(time.perf_counter() - t0)
    same = (np.array_equal(new.u_hat, ref[0]) and np.array_equal(new.crc_ok, ref[1])
            and np.array_equal(new.iterations, ref[2]))
    bits = frames * code.k
    return {
        "chain": "scppm-decoder-vs-reference", "M": M, "rate": code.rate, "frames": frames, "ns": ns, "nb": NB,
        "gap_db_above_capacity": GAP_DB, "max_iter": MAX_ITER, "repeats": repeats,
        "threads": numba.get_num_threads(), "iterations_mean": float(new.iterations.mean()),
        "identical_decisions_crc_iterations": bool(same),
        "decoder_info_bits_per_s_best": bits / min(t_new), "decoder_info_bits_per_s_median": bits / float(np.median(t_new)),
        "reference_info_bits_per_s_best": bits / min(t_ref),
        "reference_info_bits_per_s_median": bits / float(np.median(t_ref)),
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, nargs="+", default=[16, 64, 128])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reference", action="store_true",
                    help="also time the per-codeword reference decoder, alternating with the decoder")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args(argv)
    info = be.backend_info("cpu")
    rows = []
    for M in a.orders:
        if a.reference:
            r = measure_reference(M, a.frames, a.repeats)
            r["backend_info"] = info
            rows.append(r)
            print(f"M={M:<4} decoder {r['decoder_info_bits_per_s_best'] / 1e6:6.3f} Mb/s best, "
                  f"{r['decoder_info_bits_per_s_median'] / 1e6:6.3f} median   reference "
                  f"{r['reference_info_bits_per_s_best'] / 1e6:6.3f} best, {r['reference_info_bits_per_s_median'] / 1e6:6.3f} "
                  f"median   identical {r['identical_decisions_crc_iterations']}", flush=True)
        r = measure(M, a.frames, a.repeats)
        r["backend_info"] = info
        rows.append(r)
        print(f"M={M:<4} encode {r['encode_info_bits_per_s'] / 1e6:7.2f} Mb/s   decode {r['decode_info_bits_per_s'] / 1e6:6.3f} Mb/s "
              f"(core {r['decoder_core_info_bits_per_s'] / 1e6:6.3f})  iterations {r['iterations_mean']:.2f}  "
              f"FER {r['frame_errors']}/{r['frames']}", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"scppm_cpu_{dt.date.today().isoformat()}.json"
    command = " ".join(["python3 bench/bench_scppm.py"] + list(sys.argv[1:] if argv is None else argv))
    path.write_text(json.dumps({"benchmark": "scppm", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
                                "backend_info": info, "command": command, "results": rows}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
