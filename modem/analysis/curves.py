# SPDX-License-Identifier: Apache-2.0
"""Error-rate curves (FER, BER vs signal level) of the SCPPM and DVB-S2/DPSK chains, and the
decoder sensitivity measurement that ``modem link-budget --required measured`` uses.

* :func:`scppm_curve`: FER/BER vs mean signal photons per pulse ``ns`` (fixed M, rate, nb), run
  with :func:`modem.sim.scppm.run`; the Poisson PPM capacity limit
  (:func:`modem.analysis.capacity.ns_capacity_limit`) is drawn on the plot.
* :func:`dpsk_curve`: FER/BER vs Es/N0 (AWGN) or photons per channel bit (optical pre-amplified
  receiver), run with :func:`modem.sim.dpsk.run`; drawn with the Shannon limit (complex Gaussian
  input, ``Es/N0 = 2^R - 1``) and the BPSK-input capacity limit for the code's rate ``R``. On the
  optical axis these limits are ``Es/N0 x n_sp`` photons (ASE-limited, ``N0 = n_sp`` photons).
* :func:`measure_sensitivity`: the signal at which the decoder reaches FER 1e-2, interpolated
  (log FER linear in the signal in dB) between the two simulated points that bracket it; the
  entry keeps every point, the seed, the frame counts, the date, the git commit and the run time
  (provenance). :func:`write_sensitivity` stores entries in
  ``modem/analysis/scenarios/_sensitivity.toml``.

Every point stops early once ``max_errors`` frame errors are counted (after ``min_frames``), so a
curve spends its frames where FER is low. ``python3 -m modem.analysis.curves`` regenerates the
committed data (sensitivity file and the two curves under ``docs/curves/``).
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import integrate, optimize

from ..errors import ConfigError
from .capacity import ns_capacity_limit
from .link_budget import SENSITIVITY_FILE

__all__ = [
    "scppm_point", "scppm_curve", "dpsk_point", "dpsk_curve", "threshold", "shannon_esn0_db",
    "bpsk_esn0_db", "write_csv", "plot_curve", "measure_sensitivity", "measure_dpsk_sensitivity",
    "write_sensitivity",
]

CSV_FIELDS = ["x", "x_unit", "frames", "frame_errors", "bit_errors", "info_bits", "fer", "fer_ci_low",
              "fer_ci_high", "ber", "iterations_mean", "seconds"]


# --------------------------------------------------------------------------------------------
# limits
# --------------------------------------------------------------------------------------------

def shannon_esn0_db(rate) -> float:
    """Es/N0 (dB) at which the complex AWGN capacity log2(1 + Es/N0) equals ``rate`` bits/symbol."""
    return 10.0 * math.log10(2.0 ** float(Fraction(str(rate))) - 1.0)


def _bpsk_capacity(esn0: float) -> float:
    """Capacity (bits/symbol) of BPSK input on real AWGN with Es/N0 (linear) per symbol."""
    s2 = 1.0 / (2.0 * esn0)          # noise variance for unit-energy symbols +-1

    def f(y):
        p = math.exp(-(y - 1.0) ** 2 / (2 * s2)) / math.sqrt(2 * math.pi * s2)
        return p * float(np.logaddexp(0.0, -2.0 * y / s2)) / math.log(2.0)
    return 1.0 - integrate.quad(f, -1 - 40 * math.sqrt(s2), 1 + 40 * math.sqrt(s2), limit=200)[0]


def bpsk_esn0_db(rate) -> float:
    """Es/N0 (dB) at which BPSK-input AWGN capacity equals ``rate`` (0.5 -> -2.82 dB)."""
    r = float(Fraction(str(rate)))
    return optimize.brentq(lambda x: _bpsk_capacity(10 ** (x / 10)) - r, -20.0, 20.0, xtol=1e-6)


# --------------------------------------------------------------------------------------------
# simulation points
# --------------------------------------------------------------------------------------------

def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"curve point: {name} must be an integer >= {minimum}, got {name}={value!r}")
    return int(value)


def _accumulate(run_chunk, frames, chunk, max_errors, min_frames, progress):
    frames = _check_count("frames", frames, 1)
    chunk = _check_count("chunk", chunk, 1)
    max_errors = _check_count("max_errors", max_errors, 0)
    min_frames = _check_count("min_frames", min_frames, 0)
    tot = {"frames": 0, "frame_errors": 0, "bit_errors": 0, "info_bits": 0, "seconds": 0.0, "iters": 0.0}
    i = 0
    while tot["frames"] < frames:
        n = min(chunk, frames - tot["frames"])
        rep = run_chunk(n, i)
        i += 1
        for k in ("frames", "frame_errors", "bit_errors", "info_bits", "seconds"):
            tot[k] += rep[k]
        tot["iters"] += rep["iterations_mean"] * rep["frames"]
        if progress is not None:
            progress(rep["frames"])
        if max_errors and tot["frame_errors"] >= max_errors and tot["frames"] >= min_frames:
            break
    if progress is not None and tot["frames"] < frames:
        progress(frames - tot["frames"])            # the bar counts the frames budgeted per point
    from scipy.stats import binomtest  # noqa: PLC0415
    ci = binomtest(tot["frame_errors"], tot["frames"]).proportion_ci(0.95, method="exact")
    return {"frames": tot["frames"], "frame_errors": tot["frame_errors"], "bit_errors": tot["bit_errors"],
            "info_bits": tot["info_bits"], "fer": tot["frame_errors"] / tot["frames"],
            "fer_ci_low": ci.low, "fer_ci_high": ci.high, "ber": tot["bit_errors"] / tot["info_bits"],
            "iterations_mean": tot["iters"] / tot["frames"], "seconds": tot["seconds"]}


def scppm_point(M, rate, nb, ns, frames, *, max_iter=16, seed=1, batch=32, chunk=128, max_errors=0,
                min_frames=0, progress=None) -> dict:
    """One SCPPM point: ``frames`` codewords at (M, rate, ns, nb), in chunks of ``chunk`` frames
    with seeds ``seed * 100003 + i``; stops after ``max_errors`` frame errors (0: never)."""
    seed = _check_count("seed", seed, 0)
    from ..sim import scppm  # noqa: PLC0415
    p = argparse.ArgumentParser()
    scppm.add_arguments(p)

    def run_chunk(n, i):
        a = p.parse_args([])
        a.order, a.rate, a.ns, a.nb, a.frames, a.max_iter = int(M), str(rate), float(ns), float(nb), int(n), max_iter
        a.batch, a.seed = min(batch, n), int(seed) * 100003 + i
        return scppm.run(a)
    row = _accumulate(run_chunk, frames, chunk, max_errors, min_frames, progress)
    row.update(x=float(ns), x_unit="photons/pulse")
    return row


def scppm_curve(M, rate, nb, ns_values, frames, *, progress=None, **kw) -> list[dict]:
    return [scppm_point(M, rate, nb, ns, frames, progress=progress, **kw) for ns in ns_values]


def dpsk_point(frame, rate, channel, x, frames, *, nf_db=None, max_iter=50, seed=1, batch=32, chunk=64,
               max_errors=0, min_frames=0, progress=None) -> dict:
    """One DVB-S2/DPSK point: ``x`` = Es/N0 in dB (``channel="awgn"``) or photons per channel bit
    (``channel="optical"``, pre-amplified DLI receiver, noise figure ``nf_db``, default ideal)."""
    seed = _check_count("seed", seed, 0)
    from ..sim import dpsk  # noqa: PLC0415
    over = {"frame": frame, "rate": str(rate), "channel": channel, "max_iter": max_iter}
    if channel == "awgn":
        over["esn0"] = float(x)
    elif channel == "optical":
        over["ppb"] = float(x)
        if nf_db is not None:
            over["nf"] = float(nf_db)
    else:
        raise ConfigError(f"dpsk_point: channel must be awgn or optical, got {channel!r}")
    extra = {}

    def run_chunk(n, i):
        a = dpsk.default_args(frames=int(n), batch=min(batch, n), seed=int(seed) * 100003 + i, **over)
        rep = dpsk.run(a)
        extra.update({k: rep["params"][k] for k in ("photons_per_info_bit", "ebn0_db", "nf_db") if k in rep["params"]})
        return rep
    row = _accumulate(run_chunk, frames, chunk, max_errors, min_frames, progress)
    row.update(x=float(x), x_unit="Es/N0 dB" if channel == "awgn" else "photons/bit", **extra)
    return row


def dpsk_curve(frame, rate, channel, xs, frames, *, progress=None, **kw) -> list[dict]:
    return [dpsk_point(frame, rate, channel, x, frames, progress=progress, **kw) for x in xs]


def threshold(xs, fers, target=1e-2, *, db=True) -> float:
    """The signal at which FER crosses ``target``: log10(FER) interpolated linearly in x (in dB of
    x when ``db``) between the last point above and the first point at or below the target
    (points sorted by x; on a noisy, non-monotone curve the last crossing, the conservative one).
    Raises ConfigError if the points do not bracket the target."""
    pts = sorted(zip(xs, fers))
    above = [i for i, (_, f) in enumerate(pts) if f > target]
    if above and above[-1] + 1 < len(pts):
        (x0, f0), (x1, f1) = pts[above[-1]], pts[above[-1] + 1]
        if f1 == 0:      # no errors at x1: log-interpolation is undefined; x1 is the conservative answer
            return x1
        u0, u1 = (10 * math.log10(x0), 10 * math.log10(x1)) if db else (x0, x1)
        t = (math.log10(f0) - math.log10(target)) / (math.log10(f0) - math.log10(f1))
        u = u0 + t * (u1 - u0)
        return 10 ** (u / 10) if db else u
    raise ConfigError(f"threshold: the points do not bracket FER {target:g}: {pts}")


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------

def write_csv(rows, path, meta: dict) -> Path:
    """CSV with a ``# key: value`` header (parameters, limits) and one row per point."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = sorted({k for r in rows for k in r} - set(CSV_FIELDS))
    with open(path, "w", newline="") as fh:
        for k, v in meta.items():
            fh.write(f"# {k}: {v}\n")
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS + extra)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in CSV_FIELDS + extra})
    return path


def plot_curve(rows, path, *, title: str, xlabel: str, limits: list[tuple[float, str]], xlog=False) -> Path:
    """FER and BER vs x, with vertical lines at ``limits`` [(x, label)], as a PNG."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.array([r["x"] for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=110)
    for key, style, lab in (("fer", "o-", "FER"), ("ber", "s--", "BER")):
        y = np.array([r[key] for r in rows], dtype=float)
        ok = y > 0
        ax.semilogy(x[ok], y[ok], style, label=lab)
    fl = np.array([r["fer_ci_low"] for r in rows]); fh = np.array([r["fer_ci_high"] for r in rows])
    err = np.array([r["frame_errors"] > 0 for r in rows])
    ax.fill_between(x, np.where(err, fl, fh), fh, alpha=0.15, color="C0", label="FER 95 % CI")
    zero = [r for r in rows if r["frame_errors"] == 0]
    if zero:
        ax.semilogy([r["x"] for r in zero], [r["fer_ci_high"] for r in zero], "v", color="C0",
                    label="FER upper 95 % bound (0 errors)")
    for i, (xv, lab) in enumerate(limits):
        ax.axvline(xv, color=f"C{3 + i}", ls=":", lw=1.5, label=f"{lab} = {xv:.3g}")
    ax.axhline(1e-2, color="grey", lw=0.6)
    if xlog:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("error rate")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# sensitivity measurement
# --------------------------------------------------------------------------------------------

def _provenance(t0: float) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"date": _dt.date.today().isoformat(), "commit": commit, "run_seconds": round(time.time() - t0, 1)}


def measure_sensitivity(M, rate, nb, *, gaps_db=(0.2, 0.35, 0.5, 0.65, 0.8), frames=2000, max_errors=40,
                        max_iter=16, seed=1, target_fer=1e-2, refine_db=0.04, progress=None, rows_out=None) -> dict:
    """ns at which the SCPPM decoder (exact log-MAP, ``max_iter`` iterations) reaches ``target_fer``:
    simulate at ``gaps_db`` above the capacity limit, bisect (in dB) the pair of points that brackets
    the target until it is at most ``refine_db`` wide, interpolate (:func:`threshold`; where the upper
    point has no frame error its ns is taken, an upper bound)."""
    t0 = time.time()
    limit = ns_capacity_limit(M, str(rate), nb)
    ns_values = [limit * 10 ** (g / 10) for g in gaps_db]
    rows = scppm_curve(M, rate, nb, ns_values, frames, max_iter=max_iter, seed=seed, max_errors=max_errors,
                       progress=progress)
    # refine: bisect (in dB) the bracketing pair until it is narrower than refine_db
    for _ in range(6):
        rows.sort(key=lambda r: r["x"])
        # the pair threshold() interpolates: the last point above the target and the next one
        pair = [(a, b) for a, b in zip(rows, rows[1:]) if a["fer"] > target_fer >= b["fer"]][-1:]
        if not pair or 10 * math.log10(pair[0][1]["x"] / pair[0][0]["x"]) <= refine_db:
            break
        mid = math.sqrt(pair[0][0]["x"] * pair[0][1]["x"])
        rows.append(scppm_point(M, rate, nb, mid, frames, max_iter=max_iter, seed=seed, max_errors=max_errors,
                                progress=progress))
    rows.sort(key=lambda r: r["x"])
    if rows_out is not None:
        rows_out.extend(rows)
    ns_req = threshold([r["x"] for r in rows], [r["fer"] for r in rows], target_fer)
    return {"M": int(M), "rate": str(rate), "nb": float(nb), "target_fer": target_fer, "max_iter": max_iter,
            "decoder": "exact log-MAP turbo (SCPPMReceiver), CRC early stop",
            "ns_required": round(ns_req, 5), "ns_capacity_limit": round(limit, 5),
            "gap_db": round(10 * math.log10(ns_req / limit), 3), "seed": seed,
            "frames_total": int(sum(r["frames"] for r in rows)),
            "method": f"FER at {len(rows)} ns values, up to {frames} frames each (stop at {max_errors} "
                      f"frame errors), bracket bisected to <= {refine_db} dB; log10 FER interpolated linearly in ns [dB] "
                      "between the bracketing points (the upper point's ns if it had no error)",
            "points_ns": [round(r["x"], 5) for r in rows], "points_frames": [r["frames"] for r in rows],
            "points_frame_errors": [r["frame_errors"] for r in rows], **_provenance(t0)}


def measure_dpsk_sensitivity(frame, rate, ppb_values, *, frames=200, max_errors=30, seed=1, target_fer=1e-2,
                             progress=None, rows_out=None) -> dict:
    """Photons per information bit at which DVB-S2 ``frame``/``rate`` over DPSK (ideal pre-amplified
    DLI receiver) reaches ``target_fer``."""
    t0 = time.time()
    rows = dpsk_curve(frame, rate, "optical", ppb_values, frames, seed=seed, max_errors=max_errors, progress=progress)
    if rows_out is not None:
        rows_out.extend(rows)
    ppb = threshold([r["x"] for r in rows], [r["fer"] for r in rows], target_fer)
    per_info = ppb * rows[0]["photons_per_info_bit"] / rows[0]["x"]
    return {"frame": frame, "rate": str(rate), "target_fer": target_fer, "nf_db": rows[0]["nf_db"],
            "ppb_channel": round(ppb, 5), "photons_per_info_bit": round(per_info, 5), "seed": seed,
            "frames_total": int(sum(r["frames"] for r in rows)),
            "method": f"FER at {len(rows)} photons/channel-bit values, up to {frames} frames each (stop at "
                      f"{max_errors} frame errors), interpolated; photons per information bit include the ASM",
            "points_ppb": [round(r["x"], 5) for r in rows], "points_frames": [r["frames"] for r in rows],
            "points_frame_errors": [r["frame_errors"] for r in rows], **_provenance(t0)}


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def write_sensitivity(entries: dict, path=None) -> Path:
    """Write ``{"scppm": [entry, ...], "dpsk": [...]}`` as TOML arrays of tables."""
    path = Path(path) if path is not None else SENSITIVITY_FILE
    lines = ["# Measured decoder sensitivity (FER 1e-2) used by `modem link-budget --required measured`.",
             "# Produced by modem.analysis.curves.measure_sensitivity / measure_dpsk_sensitivity",
             "# (python3 -m modem.analysis.curves --scppm --dpsk PPB...); do not edit by hand.", ""]
    for chain in ("scppm", "dpsk"):
        for e in entries.get(chain, []):
            lines.append(f"[[{chain}]]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in e.items()]
            lines.append("")
    path.write_text("\n".join(lines))
    return path


# --------------------------------------------------------------------------------------------
# regenerate the committed data
# --------------------------------------------------------------------------------------------

def scppm_curve_files(rows, M, rate, nb, out_stem, *, max_iter=16) -> tuple[Path, Path]:
    limit = ns_capacity_limit(M, str(rate), nb)
    meta = {"chain": "SCPPM (CCSDS 142.0-B-1)", "M": M, "rate": rate, "nb": nb, "max_iter": max_iter,
            "x": "mean signal photons per pulse ns (detected)", "capacity_limit_ns": f"{limit:.5f}"}
    csv_path = write_csv(rows, f"{out_stem}.csv", meta)
    png = plot_curve(rows, f"{out_stem}.png", xlabel="signal photons per pulse ns", limits=[(limit, "capacity limit")],
                     title=f"SCPPM {M}-PPM rate {rate}, nb = {nb} photons/slot, exact log-MAP, {max_iter} iterations")
    return csv_path, png


def dpsk_curve_files(rows, frame, rate, channel, out_stem, *, nf_db=None) -> tuple[Path, Path]:
    from ..channel.optical import NF_IDEAL_DB  # noqa: PLC0415
    sh, bp = shannon_esn0_db(rate), bpsk_esn0_db(rate)
    if channel == "awgn":
        limits = [(sh, "Shannon limit Es/N0 dB"), (bp, "BPSK-input limit Es/N0 dB")]
        xlabel = "Es/N0 per DPSK symbol [dB]"
    else:
        n_sp = 10 ** ((NF_IDEAL_DB if nf_db is None else nf_db) / 10) / 2
        limits = [(10 ** (sh / 10) * n_sp, "Shannon limit photons/bit"), (10 ** (bp / 10) * n_sp, "BPSK-input limit photons/bit")]
        nf_text = "ideal NF" if nf_db is None else f"NF {float(nf_db):g} dB"
        xlabel = f"received photons per channel bit (pre-amplified DLI, {nf_text})"
    meta = {"chain": "DVB-S2 LDPC+BCH, DPSK", "frame": frame, "rate": rate, "channel": channel,
            **({"nf_db": float(nf_db)} if channel != "awgn" and nf_db is not None else {}),
            "x": xlabel, **{lab.replace(" ", "_"): f"{v:.5f}" for v, lab in limits}}
    csv_path = write_csv(rows, f"{out_stem}.csv", meta)
    png = plot_curve(rows, f"{out_stem}.png", xlabel=xlabel, limits=limits,
                     title=f"DVB-S2 {frame} rate {rate}, DPSK, {channel} channel (differential detection, exact LLRs)")
    return csv_path, png


def _merge(entries: dict) -> dict:
    """Existing file entries, with those of ``entries`` replacing the ones with the same key."""
    from .link_budget import load_sensitivity  # noqa: PLC0415
    key = {"scppm": lambda e: (e["M"], e["rate"], e["nb"]), "dpsk": lambda e: (e["frame"], e["rate"])}
    out = {"scppm": [], "dpsk": []}
    for e in load_sensitivity():
        chain = e.pop("chain")
        if all(key[chain](e) != key[chain](n) for n in entries.get(chain, [])):
            out[chain].append(e)
    for chain in out:
        out[chain] += entries.get(chain, [])
    return out


def _main(argv=None) -> int:  # pragma: no cover - long run, exercised by hand
    ap = argparse.ArgumentParser(description="regenerate the measured sensitivity file and the docs curves")
    ap.add_argument("--scppm", action="store_true", help="SCPPM M=16 and 128, rate 1/2, nb=0.1 (+ docs curve)")
    ap.add_argument("--dpsk", nargs="*", type=float, default=None,
                    help="DVB-S2 normal 1/2 on the ideal optical receiver at these photons/channel bit (+ docs curve)")
    ap.add_argument("--docs", default="docs/curves")
    ap.add_argument("--frames", type=int, default=2000)
    a = ap.parse_args(argv)
    if a.scppm:
        rows16: list = []
        e16 = measure_sensitivity(16, "1/2", 0.1, frames=a.frames, rows_out=rows16)
        print(e16, flush=True)
        scppm_curve_files(rows16, 16, "1/2", 0.1, f"{a.docs}/scppm_16ppm_r1-2_nb0.1")
        write_sensitivity(_merge({"scppm": [e16]}))
        e128 = measure_sensitivity(128, "1/2", 0.1, frames=a.frames)
        print(e128, flush=True)
        write_sensitivity(_merge({"scppm": [e128]}))
    if a.dpsk:
        rows: list = []
        e = measure_dpsk_sensitivity("normal", "1/2", a.dpsk, frames=min(a.frames, 300), rows_out=rows)
        print(e, flush=True)
        dpsk_curve_files(rows, "normal", "1/2", "optical", f"{a.docs}/dvbs2_normal_r1-2_dpsk")
        write_sensitivity(_merge({"dpsk": [e]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
