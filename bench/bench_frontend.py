# SPDX-License-Identifier: Apache-2.0
"""Throughput of the SCPPM time-tag front end alone: tags -> slot counts -> codewords -> symbol metrics.

The front end is everything :class:`modem.receiver.SCPPMTimeTagReceiver` runs before the SCPPM
decoder: slot clock recovery (acquisition, tracking loop, binning; ``modem.sync.slot_clock``),
codeword sync (CSM scoring; ``modem.sync.codeword_sync``) and the symbol metrics the decoder gets
(``SCPPMReceiver._symbol_metric``: guard and CSM dropped, counts times ln(1 + ns/nb)). In the
real-time receiver it runs on the CPU even when the decoder runs on a GPU, so it bounds the rate.

Stream: random information blocks, SCPPM-encoded and PPM-modulated, through
:func:`modem.sync.timetags.simulate_time_tags` with the detector and clock of a capture preset
(``modem.io.generate.PRESETS``: ``snspd16`` 16-PPM rate 1/2, +120 ppm drifting 40 ppm/s, 50 ps
jitter, 4 pixels, darks, dead time; ``deepspace128`` 128-PPM rate 1/2, -35 ppm, 5 ppm/s, 16 pixels,
high background), no cloud. The tags are pushed in chunks of ``--chunk`` tags (the offline
reader's chunk is 262144 records; the real-time receiver decodes batches of 4096-tag messages).

Figures: tags/s, the equivalent transmitted slot rate (slots of the stream / time) and information
rate (k bits per transmitted codeword / time), the stream's real-time factor, per-stage seconds.
Warm-up (Numba compilation, first touch) is one untimed pass; then ``--repeats`` passes, best and
median. ``--baseline REV`` also times the front end of commit ``REV`` (its ``modem`` package
extracted with ``git archive`` into a temporary directory and imported as a second package)
alternately with the working tree in the same process -- other jobs on a shared machine then
slow both alike -- and checks that both give identical outputs. ``--profile`` adds the top
functions of a cProfile pass (own time) to the report.

    python bench/bench_frontend.py                         # bench/results/frontend_<date>.json
    python bench/bench_frontend.py --baseline 348b67d --profile
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import hashlib
import importlib
import io
import json
import pstats
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # run as a script from anywhere

from modem import backend as be  # noqa: E402

#: (preset, transmitted codewords): ~0.7 M tags (16-PPM, 9.1 ms) and ~2.5 M tags (128-PPM, 20.9 ms)
CONFIGS = [("snspd16", 120), ("deepspace128", 60)]


def make_stream(preset: str, n_codewords: int, seed: int = 5):
    """(link meta for ``receiver_for``, int64 tags, code, transmitted slots) of a preset's link."""
    from modem.fec.scppm import SCPPMCode, SCPPMTransmitter
    from modem.io.generate import PRESETS
    from modem.sync.timetags import TimeTagConfig, simulate_time_tags

    spec = PRESETS[preset]
    code = SCPPMCode(M=spec.M, rate=spec.rate)
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 2, (n_codewords, code.k), dtype=np.uint8)
    x = SCPPMTransmitter(code).modulate(u)
    cfg = TimeTagConfig(slot_width_ps=spec.slot_width_ps, clock_offset_ppm=spec.clock_offset_ppm,
                        drift_ppm_per_s=spec.drift_ppm_per_s, jitter_rms_ps=spec.jitter_rms_ps,
                        efficiency=spec.efficiency, dark_count_rate_hz=spec.dark_count_rate_hz,
                        dead_time_ps=spec.dead_time_ps, n_channels=spec.n_channels, t0_ps=spec.t0_ps)
    tags = simulate_time_tags(x, spec.ns, spec.nb, rng, cfg)
    return spec.link_meta(), tags.t_ps, code, int(x.size)


def front_end_pass(rx, t: np.ndarray, chunk: int, digest: bool = False):
    """One pass of the front end of receiver ``rx`` over tags ``t``. Returns (seconds, per-stage
    seconds [clock, cwsync, metrics], codewords, sha256 of every output or None)."""
    clock, sync, dec = rx.clock, rx.cw_sync, rx.decoder
    cst, sst = clock.initial_state(), sync.initial_state()
    stage = [0.0, 0.0, 0.0]
    h = hashlib.sha256() if digest else None
    n_cw = 0

    def after(slots, sst):
        nonlocal n_cw
        t1 = time.perf_counter()
        cw, sst = sync.push(slots, sst)
        t2 = time.perf_counter()
        metric = dec._symbol_metric(cw.counts, dec.weight) if len(cw) else None
        t3 = time.perf_counter()
        stage[1] += t2 - t1
        stage[2] += t3 - t2
        n_cw += len(cw)
        if h is not None:
            for a in (slots.counts, slots.sym_index, slots.t_sym_ps, slots.segment, cw.counts, cw.sym_index,
                      cw.csm_llr, cw.locked):
                h.update(np.ascontiguousarray(a).tobytes())
            h.update(repr([(e.kind, e.t_start_ps, e.t_end_ps) for e in slots.events]).encode())
            if metric is not None:
                h.update(metric.tobytes())
        return sst

    t_start = time.perf_counter()
    for i in range(0, t.size, chunk):
        t0 = time.perf_counter()
        slots, cst = clock.push(t[i:i + chunk], cst)
        stage[0] += time.perf_counter() - t0
        sst = after(slots, sst)
    t0 = time.perf_counter()
    slots, cst = clock.flush(cst)
    stage[0] += time.perf_counter() - t0
    sst = after(slots, sst)
    return time.perf_counter() - t_start, stage, n_cw, (h.hexdigest() if h is not None else None)


def baseline_package(rev: str, tmp: Path):
    """Import the ``modem`` package of commit ``rev`` as ``modem_<sha>`` (relative imports only)."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", rev], capture_output=True, text=True,
                         check=True).stdout.strip()
    name = f"modem_{sha}"
    data = subprocess.run(["git", "-C", str(ROOT), "archive", sha, "modem"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp, filter="data")
    (tmp / "modem").rename(tmp / name)
    sys.path.insert(0, str(tmp))
    return importlib.import_module(f"{name}.offline"), sha


def profile_pass(rx, t, chunk, top=12) -> list[dict]:
    pr = cProfile.Profile()
    pr.enable()
    front_end_pass(rx, t, chunk)
    pr.disable()
    st = pstats.Stats(pr)
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:top]
    total = sum(v[2] for v in st.stats.values())
    return [{"function": f"{Path(f).name}:{line}({fn})", "calls": int(v[1]), "own_s": round(v[2], 5),
             "cumulative_s": round(v[3], 5), "own_share": round(v[2] / total, 3)} for (f, line, fn), v in rows]


def measure(preset, n_codewords, chunk, repeats, ref_offline=None, profile=False):
    from modem.offline import receiver_for

    meta, t, code, n_slots = make_stream(preset, n_codewords)
    rx = receiver_for(meta)
    rx_ref = ref_offline.receiver_for(meta) if ref_offline is not None else None
    runs = {"current": rx} if rx_ref is None else {"current": rx, "baseline": rx_ref}
    digests, n_cw = {}, {}
    for name, r in runs.items():                                    # warm-up: compile, first touch
        _, _, n_cw[name], digests[name] = front_end_pass(r, t, chunk, digest=True)
    times = {name: [] for name in runs}
    stages = {name: [] for name in runs}
    for _ in range(repeats):                                        # alternate: A, B, A, B, ...
        for name, r in runs.items():
            sec, stage, _, _ = front_end_pass(r, t, chunk)
            times[name].append(sec)
            stages[name].append(stage)
    duration_s = n_slots * float(meta["slot_width_ps"]) * 1e-12
    out = {"preset": preset, "M": code.M, "rate": str(code.rate), "chunk_tags": chunk, "repeats": repeats,
           "tags": int(t.size), "transmitted_codewords": n_codewords, "transmitted_slots": n_slots,
           "stream_duration_s": duration_s, "link": {k: meta[k] for k in ("slot_width_ps", "ns", "nb", "n_channels")},
           "codewords_found": n_cw["current"], "output_sha256": digests["current"]}
    for name in runs:
        best, med = min(times[name]), float(np.median(times[name]))
        i_best = int(np.argmin(times[name]))
        out[name] = {"seconds": [round(s, 5) for s in times[name]], "best_s": best, "median_s": med,
                     "tags_per_s_best": t.size / best, "tags_per_s_median": t.size / med,
                     "slots_per_s_best": n_slots / best, "slots_per_s_median": n_slots / med,
                     "info_bits_per_s_best": n_codewords * code.k / best,
                     "info_bits_per_s_median": n_codewords * code.k / med,
                     "real_time_factor_best": duration_s / best,
                     "stage_seconds_of_best": dict(zip(("slot_clock", "codeword_sync", "symbol_metrics"),
                                                       (round(x, 5) for x in stages[name][i_best])))}
    if rx_ref is not None:
        out["baseline"]["codewords_found"] = n_cw["baseline"]
        out["identical_outputs"] = digests["baseline"] == digests["current"]
        out["speedup_best"] = out["baseline"]["best_s"] / out["current"]["best_s"]
        out["speedup_median"] = out["baseline"]["median_s"] / out["current"]["median_s"]
    if profile:
        out["profile_current"] = profile_pass(rx, t, chunk)
        if rx_ref is not None:
            out["profile_baseline"] = profile_pass(rx_ref, t, chunk)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chunk", type=int, nargs="+", default=[65536], help="tags per push (several: one row each)")
    ap.add_argument("--only", nargs="+", choices=[c[0] for c in CONFIGS], default=None)
    ap.add_argument("--baseline", default=None, metavar="REV", help="also time commit REV, alternately")
    ap.add_argument("--profile", action="store_true", help="add the top functions of a cProfile pass")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ref, ref_sha = baseline_package(args.baseline, Path(tmp)) if args.baseline else (None, None)
        results = []
        for preset, n_cw in CONFIGS:
            if args.only and preset not in args.only:
                continue
            for chunk in args.chunk:
                r = measure(preset, n_cw, chunk, args.repeats, ref, args.profile)
                c = r["current"]
                line = (f"{preset:13s} chunk {chunk:6d}: {c['tags_per_s_best'] / 1e6:6.2f} Mtags/s "
                        f"{c['slots_per_s_best'] / 1e6:7.1f} Mslot/s {c['info_bits_per_s_best'] / 1e6:6.2f} Mb/s info "
                        f"(best; median {c['tags_per_s_median'] / 1e6:.2f} Mtags/s), {r['codewords_found']} codewords")
                if ref is not None:
                    b = r["baseline"]
                    line += (f"\n{'':13s} baseline {ref_sha}: {b['tags_per_s_best'] / 1e6:6.2f} Mtags/s "
                             f"(median {b['tags_per_s_median'] / 1e6:.2f}); speedup {r['speedup_best']:.2f}x best, "
                             f"{r['speedup_median']:.2f}x median; identical outputs: {r['identical_outputs']}")
                print(line, flush=True)
                results.append(r)
    report = {"benchmark": "scppm_timetag_frontend", "date": dt.date.today().isoformat(),
              "backend_info": be.backend_info("cpu"),
              "command": " ".join(["python3 bench/bench_frontend.py"] + list(sys.argv[1:] if argv is None else argv)),
              "baseline_commit": ref_sha,
              "timed": "slot clock push/flush + codeword sync push + symbol metrics, per chunk; stream generation "
                       "and the SCPPM decoder excluded",
              "results": results}
    out = args.out or ROOT / "bench" / "results" / f"frontend_{report['date']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
