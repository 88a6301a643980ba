# SPDX-License-Identifier: Apache-2.0
"""Throughput benchmarks per chain and backend: ``modem bench`` and ``bench/bench_gpu.py``.

Measures information bits per second (+ codewords/s, mean iterations, frame errors) of

* ``scppm``: the SCPPM decoder on symbol metrics (``decoder``), and the receive chain from
  codeword-aligned slot counts to CRC-checked blocks (``chain``; on the GPU through
  :class:`~modem.gpu.pipeline.SCPPMGPUPipeline`, host-to-device transfers included);
* ``ldpc``: DVB-S2 LDPC min-sum + BCH decoding of channel LLRs (``decoder``), with scikit-commpy's
  belief-propagation decoder (sum-product, flooding, CPU) on the same code and LLRs as the
  reference a user would otherwise reach for;
* ``dpsk``: the receive chain from balanced-detector port energies to checked DVB-S2 frames
  (``chain``; on the GPU through :class:`~modem.gpu.pipeline.DPSKGPUPipeline`).

Timing: inputs are prepared first (on the device for the GPU decoder figures); one warm-up call
(JIT / NVRTC compilation) is excluded; the clock stops after the device is synchronised; the best
of ``repeats`` calls is reported (and all of them). Every report carries
:func:`modem.backend.backend_info` (device, driver, CUDA, commit) and the parameters. The JSON is
written to ``bench/results/bench_<chain>_<backend>_<date>.json``. Benchmarks never assert.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import numpy as np

from .. import backend as be
from ..errors import ConfigError

CHAINS = ("scppm", "ldpc", "dpsk")
SCPPM_GAP_DB = 0.8      # above the Poisson capacity limit: the SCPPM sensitivity operating point
SCPPM_NB = 0.1


def _sync(backend: str):
    if backend == "gpu":
        be.xp_for("gpu").cuda.Device().synchronize()


def _timed(fn, backend: str, repeats: int):
    """(best seconds, all seconds, last result); one warm-up call first."""
    fn()
    _sync(backend)
    times, res = [], None
    for _ in range(max(1, repeats)):
        _sync(backend)
        t0 = time.perf_counter()
        res = fn()
        _sync(backend)
        times.append(time.perf_counter() - t0)
    return min(times), times, res


def _rate(bits: int, t: float) -> float:
    return bits / t if t > 0 else float("inf")


# --------------------------------------------------------------------------------------------
def bench_scppm(backend: str, M: int = 16, rate: str = "1/2", frames: int = 64, max_iter: int = 16,
                repeats: int = 3, batch: int | None = None, seed: int = 7) -> list[dict]:
    from ..analysis.capacity import ns_capacity_limit  # noqa: PLC0415
    from ..channel.poisson import simulate_counts  # noqa: PLC0415
    from ..fec.scppm import SCPPMCode, SCPPMReceiver, SCPPMTransmitter  # noqa: PLC0415
    code = SCPPMCode(M, rate)
    ns = ns_capacity_limit(M, rate, SCPPM_NB) * 10 ** (SCPPM_GAP_DB / 10)
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 2, (frames, code.k), dtype=np.uint8)
    y = simulate_counts(SCPPMTransmitter(code).modulate(u), ns, SCPPM_NB, rng)
    if y.max() < 256:
        y = y.astype(np.uint8)        # detector counts as a capture board delivers them (1 byte/slot)
    rx = SCPPMReceiver(code, ns=ns, nb=SCPPM_NB, max_iter=max_iter)
    metric = rx._symbol_metric(y, rx.weight)
    bits = frames * code.k
    common = {"chain": "scppm", "M": M, "rate": rate, "k": code.k, "frames": frames, "max_iter": max_iter,
              "counts_dtype": str(y.dtype),
              "algorithm": "log-MAP", "ns": ns, "nb": SCPPM_NB, "gap_db_above_capacity": SCPPM_GAP_DB}
    out = []
    if backend == "cpu":
        t, ts, r = _timed(lambda: rx.decoder.decode(metric), "cpu", repeats)
        out.append(dict(common, stage="decoder", seconds=ts, info_bits_per_s=_rate(bits, t),
                        iterations_mean=float(r.iterations.mean()), frame_errors=int((r.u_hat != u).any(1).sum())))
        t, ts, r = _timed(lambda: rx.receive(y), "cpu", repeats)
        out.append(dict(common, stage="chain", input="slot counts (host)", seconds=ts, info_bits_per_s=_rate(bits, t),
                        iterations_mean=float(r.iterations.mean()), frame_errors=int((r.u_hat != u).any(1).sum())))
        return out
    cp = be.xp_for("gpu")
    from .pipeline import SCPPMGPUPipeline  # noqa: PLC0415
    dmetric = cp.asarray(metric)
    t, ts, r = _timed(lambda: rx.decoder.decode(dmetric, check=False), "gpu", repeats)
    out.append(dict(common, stage="decoder", input="symbol metrics (device)", seconds=ts,
                    info_bits_per_s=_rate(bits, t), iterations_mean=float(r.iterations.mean().get()),
                    frame_errors=int((be.to_numpy(r.u_hat) != u).any(1).sum())))
    pipe = SCPPMGPUPipeline(code, ns, SCPPM_NB, max_iter=max_iter)
    b = batch or max(1, frames // 4)
    chunks = [y[i:i + b] for i in range(0, frames, b)]
    t, ts, parts = _timed(lambda: list(pipe.run(chunks)), "gpu", repeats)
    uh = np.concatenate([p.u_hat for p in parts])
    it = np.concatenate([p.iterations for p in parts])
    out.append(dict(common, stage="chain", input="slot counts (host, pinned + streams)", batch=b, seconds=ts,
                    info_bits_per_s=_rate(bits, t), iterations_mean=float(it.mean()),
                    frame_errors=int((uh != u).any(1).sum())))
    return out


# --------------------------------------------------------------------------------------------
def ldpc_bench_input(frame, rate, esn0, frames, seed=11):
    """Benchmark input of a DVB-S2 code: random information ``u`` (frames, k), codewords ``cw``
    (frames, n) and float32 BPSK AWGN LLRs at QPSK Es/N0 ``esn0`` dB (per-bit noise variance
    10^(-Es/N0/10); positive = bit 0). Returns ``(code, u, cw, llr)``; also used by bench/bench_ldpc.py."""
    from ..fec import dvbs2  # noqa: PLC0415
    code = dvbs2.code(frame, rate)
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 2, (frames, code.k), dtype=np.uint8)
    cw = code.encode(u)
    s2 = 1.0 / 10 ** (esn0 / 10)
    llr = (2.0 * ((1.0 - 2.0 * cw) + rng.normal(0.0, np.sqrt(s2), cw.shape)) / s2).astype(np.float32)
    return code, u, cw, llr


def commpy_bp_rate(code, llr: np.ndarray, u: np.ndarray, max_iter: int, frames: int = 1) -> dict:
    """scikit-commpy's ldpc_bp_decode (SPA, flooding) on ``frames`` frames of the same code.

    CommPy's parameter-file loader fails under NumPy 2, so its params dict is built from our H:
    n_vnodes, n_cnodes and the parity-check matrix (which makes it skip its own matrix build).
    Its LLR convention is ours (positive = bit 0; it decides ``signbit``).
    """
    from commpy.channelcoding.ldpc import ldpc_bp_decode  # noqa: PLC0415
    H = code.ldpc.parity_check_matrix().tocsc().astype(np.int8)
    params = {"n_vnodes": code.n, "n_cnodes": code.n - code.k_ldpc, "parity_check_matrix": H}
    frames = min(frames, llr.shape[0])
    t0 = time.perf_counter()
    errs = 0
    for f in range(frames):
        dec, _ = ldpc_bp_decode(llr[f].astype(np.float64), params, "SPA", max_iter)
        errs += int(np.any(dec[:code.k] != u[f]))
    t = time.perf_counter() - t0
    return {"decoder": "scikit-commpy ldpc_bp_decode SPA (flooding), CPU", "frames": frames, "seconds": t,
            "info_bits_per_s": _rate(frames * code.k, t), "frame_errors": errs}


def bench_ldpc(backend: str, frame: str = "normal", rate: str = "1/2", esn0: float = 1.2, frames: int = 64,
               max_iter: int = 50, repeats: int = 3, commpy_frames: int = 1) -> list[dict]:
    code, u, cw, llr = ldpc_bench_input(frame, rate, esn0, frames)
    bits = frames * code.k
    common = {"chain": "ldpc", "frame": frame, "rate": rate, "k": code.k, "n": code.n, "esn0_db_qpsk": esn0,
              "frames": frames, "max_iter": max_iter, "algorithm": "minsum", "scale": code.minsum_scale,
              "raw_ber": float(np.mean((llr < 0) != cw))}
    if backend == "cpu":
        t, ts, r = _timed(lambda: code.decode(llr, max_iter=max_iter), "cpu", repeats)
        fe = int((r.u_hat != u).any(1).sum())
        it = float(r.iterations.mean())
    else:
        cp = be.xp_for("gpu")
        dl = cp.asarray(llr)
        t, ts, r = _timed(lambda: code.decode(dl, max_iter=max_iter), "gpu", repeats)
        fe = int((be.to_numpy(r.u_hat) != u).any(1).sum())
        it = float(r.iterations.mean().get())
    res = dict(common, stage="decoder", seconds=ts, info_bits_per_s=_rate(bits, t), iterations_mean=it,
               frame_errors=fe)
    out = [res]
    if commpy_frames > 0:
        ref = commpy_bp_rate(code, llr, u, max_iter, commpy_frames)
        out.append(dict(common, stage="reference", **ref))
        res["ratio_vs_commpy"] = res["info_bits_per_s"] / ref["info_bits_per_s"]
    return out


# --------------------------------------------------------------------------------------------
def _dpsk_setup(frame, rate, esn0_db, frames, seed=5):
    """Port energies of random DVB-S2 codewords sent as DPSK over the project's AWGN field channel
    (modem.channel.awgn.AWGNChannel, 1-bit delay-line interferometer, balanced detection;
    QPSK-free Es/N0 per channel bit), one continuous differential stream."""
    from ..channel.awgn import AWGNChannel  # noqa: PLC0415
    from ..channel.optical import dli_detect  # noqa: PLC0415
    from ..fec import dvbs2  # noqa: PLC0415
    from ..modulation import dpsk  # noqa: PLC0415
    code = dvbs2.code(frame, rate)
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 2, (frames, code.k), dtype=np.uint8)
    c = code.encode(u)
    ch = AWGNChannel(esn0_db)
    x, _ = dpsk.differential_encode(c.reshape(-1))
    xa, xb, _ = dli_detect(ch, dpsk.dpsk_field(x), rng)
    # float32 port energies (a sampled detector's precision; halves the host-to-device traffic)
    return (code, u, xa.reshape(c.shape).astype(np.float32), xb.reshape(c.shape).astype(np.float32),
            ch.es, ch.sigma2)


def bench_dpsk(backend: str, frame: str = "normal", rate: str = "1/2", esn0: float = 2.0, frames: int = 64,
               max_iter: int = 50, repeats: int = 3, batch: int | None = None) -> list[dict]:
    from ..modulation import dpsk  # noqa: PLC0415
    code, u, xa, xb, es, sigma2 = _dpsk_setup(frame, rate, esn0, frames)
    bits = frames * code.k
    common = {"chain": "dpsk", "frame": frame, "rate": rate, "k": code.k, "esn0_db": esn0, "frames": frames,
              "max_iter": max_iter, "llr": "gaussian", "algorithm": "minsum", "stage": "chain",
              "input": "port energies float32 (host)"}
    if backend == "cpu":
        def run():
            return code.decode(dpsk.llr_gaussian(xa, xb, es, sigma2), max_iter=max_iter)
        t, ts, r = _timed(run, "cpu", repeats)
        return [dict(common, seconds=ts, info_bits_per_s=_rate(bits, t), iterations_mean=float(r.iterations.mean()),
                     frame_errors=int((r.u_hat != u).any(1).sum()))]
    from .pipeline import DPSKGPUPipeline  # noqa: PLC0415
    pipe = DPSKGPUPipeline(code, es, sigma2, max_iter=max_iter)
    b = batch or max(1, frames // 4)
    chunks = [(xa[i:i + b], xb[i:i + b]) for i in range(0, frames, b)]
    t, ts, parts = _timed(lambda: list(pipe.run(chunks)), "gpu", repeats)
    uh = np.concatenate([p.u_hat for p in parts])
    it = np.concatenate([p.iterations for p in parts])
    return [dict(common, input="port energies (host, pinned + streams)", batch=b, seconds=ts,
                 info_bits_per_s=_rate(bits, t), iterations_mean=float(it.mean()),
                 frame_errors=int((uh != u).any(1).sum()))]


# --------------------------------------------------------------------------------------------
def run(chain: str, backend: str, *, compare_cpu: bool = False, out_dir: Path | None = None,
        write: bool = True, **params) -> dict:
    """Run one chain's benchmark on ``backend`` ('cpu'/'gpu'); optionally also the CPU path for
    ratios; write and return the report."""
    if chain not in CHAINS:
        raise ConfigError(f"modem bench: chain must be one of {CHAINS}, got {chain!r}")
    for name, low in (("frames", 1), ("repeats", 1), ("max_iter", 1), ("batch", 1), ("commpy_frames", 0)):
        v = params.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low):
            raise ConfigError(f"modem bench: {name} must be an integer >= {low}, got {name}={v!r}")
    backend = be.resolve_backend(backend)
    fn = {"scppm": bench_scppm, "ldpc": bench_ldpc, "dpsk": bench_dpsk}[chain]
    results = fn(backend, **params)
    report = {"benchmark": f"modem_bench_{chain}", "date": dt.date.today().isoformat(),
              "backend_info": be.backend_info(backend), "chain": chain, "parameters": params, "results": results}
    if compare_cpu and backend != "cpu":
        cpu_params = dict(params)
        cpu_params.pop("batch", None)
        if chain == "ldpc":
            cpu_params["commpy_frames"] = 0
        cpu = fn("cpu", **cpu_params)
        report["cpu_results"] = cpu
        by_stage = {r["stage"]: r["info_bits_per_s"] for r in cpu}
        for r in results:
            if r["stage"] in by_stage:
                r["ratio_vs_cpu"] = r["info_bits_per_s"] / by_stage[r["stage"]]
    if write:
        d = out_dir or Path(__file__).resolve().parents[2] / "bench" / "results"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"bench_{chain}_{backend}_{report['date']}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        report["path"] = str(path)
    return report


def summary_lines(report: dict) -> list[str]:
    info = report["backend_info"]
    lines = [f"backend={info['backend']} device={info['device']} commit={info['commit']}"]
    for r in report["results"] + report.get("cpu_results", []):
        extra = "".join(f" {k}={r[k]:.3g}" for k in ("ratio_vs_cpu", "ratio_vs_commpy") if k in r)
        label = r.get("decoder", r["stage"])
        lines.append(f"{r['chain']:5s} {label:>9.40s}  {r['info_bits_per_s'] / 1e6:10.3f} Mb/s"
                     f"  it_mean={r.get('iterations_mean', float('nan')):.2f}  FE={r['frame_errors']}/{r['frames']}{extra}")
    if "path" in report:
        lines.append(f"wrote {report['path']}")
    return lines


# --------------------------------------------------------------------------------------------
def add_arguments(p):
    p.add_argument("--chain", choices=CHAINS, required=True, help="scppm, ldpc or dpsk")
    p.add_argument("--backend", choices=("cpu", "gpu", "auto"), default=None,
                   help="default: MODEM_BACKEND (auto = GPU where usable)")
    p.add_argument("--frames", type=int, default=64, help="codewords per timed call")
    p.add_argument("--max-iter", type=int, default=None, help="iteration cap (scppm 16, ldpc/dpsk 50)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--order", "-M", type=int, default=16, help="scppm: PPM order")
    p.add_argument("--rate", default="1/2", help="code rate label")
    p.add_argument("--frame", choices=("normal", "short"), default="normal", help="ldpc/dpsk: FECFRAME")
    p.add_argument("--snr", type=float, default=None,
                   help="ldpc: QPSK Es/N0 dB (default 1.2); dpsk: Es/N0 per channel bit dB (default 2.0)")
    p.add_argument("--batch", type=int, default=None, help="gpu chain: codewords per pipeline batch")
    p.add_argument("--commpy-frames", type=int, default=1, help="ldpc: frames for the scikit-commpy reference (0: skip)")
    p.add_argument("--compare-cpu", action="store_true", help="also time the CPU path and report ratios")
    p.add_argument("--out-dir", type=Path, default=None, help="default bench/results")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(_run=main_from_args)


def register(subparsers):
    """Add ``modem bench`` to the CLI's subparsers."""
    p = subparsers.add_parser("bench", help="throughput benchmark of a chain on the CPU or GPU (info bits/s)",
                              description="Information bits per second of the SCPPM decoder/chain, the DVB-S2 LDPC "
                                          "decoder (vs scikit-commpy) or the DPSK chain; JSON to bench/results/.")
    add_arguments(p)
    return p


def main_from_args(args) -> int:
    params: dict = {"frames": args.frames, "repeats": args.repeats}
    cap = args.max_iter
    if args.chain == "scppm":
        params.update(M=args.order, rate=args.rate, max_iter=16 if cap is None else cap)
    elif args.chain == "ldpc":
        params.update(frame=args.frame, rate=args.rate, max_iter=50 if cap is None else cap,
                      esn0=1.2 if args.snr is None else args.snr, commpy_frames=args.commpy_frames)
    else:
        params.update(frame=args.frame, rate=args.rate, max_iter=50 if cap is None else cap,
                      esn0=2.0 if args.snr is None else args.snr)
    if args.batch is not None and args.chain != "ldpc":
        params["batch"] = args.batch
    report = run(args.chain, args.backend, compare_cpu=args.compare_cpu, out_dir=args.out_dir,
                 write=not args.no_write, **params)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(summary_lines(report)))
    return 0
