# SPDX-License-Identifier: Apache-2.0
"""Implementation loss of the SCPPM time-tag receiver: codeword error rate of the whole chain
(time tags -> slot clock -> codeword sync -> decoder) beside the decoder alone (genie slot counts),
at the same photon flux, near the decoder's threshold under strong background.

Decoder alone: ``n_rec * n_cw`` random codewords, Poisson slot counts
(:func:`modem.channel.poisson.simulate_counts`) -> :class:`SCPPMReceiver`. Receiver: ``n_rec``
records of ``n_cw`` random codewords each, SNSPD time tags (:func:`simulate_time_tags`: clock offset
uniform in +-250 ppm, 50 ppm/s drift, 50 ps rms jitter, random start), each through a fresh
:class:`SCPPMTimeTagReceiver` in one push. The receiver is charged with every codeword of a
record, the first included (the slot clock starts tracking a few symbols before the signal's first
photons, so the first CSM is whole); a codeword counts as received when its CRC-32 passes and it
equals a sent one (an undetected error is reported apart).
``--old`` also runs the receiver with the acquisition and codeword-sync rules before a46c1f3
(guard-ratio test only, ``acq_guard_z`` off; a 1024-symbol window at every M; no slot-offset
search, ``slot_search=0``).

Figures: codeword error rates with exact (Clopper-Pearson) 95 % intervals, acquisitions, the slot
offsets the codeword synchroniser locked at, seconds. JSON into ``bench/results/``.

    python bench/receiver_sensitivity.py                  # the default grid, ~2 minutes on 2 cores
    python bench/receiver_sensitivity.py --old --records 12 --codewords 8
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # run as a script from anywhere

from modem import backend as be  # noqa: E402
from modem.analysis.capacity import ns_capacity_limit  # noqa: E402
from modem.channel.poisson import simulate_counts  # noqa: E402
from modem.fec.scppm import SCPPMCode, SCPPMReceiver, SCPPMTransmitter  # noqa: E402
from modem.framing.tm import TMFrameSpec  # noqa: E402
from modem.receiver import SCPPMTimeTagReceiver  # noqa: E402
from modem.sync.timetags import TimeTagConfig, simulate_time_tags  # noqa: E402

#: (M, ns points) at nb = 0.1: from ~0.5 dB above the capacity limit to ~1 dB
GRID = [(16, (1.45, 1.5, 1.6)), (64, (1.7, 1.8)), (128, (1.8, 1.9, 2.0)), (256, (2.0, 2.2))]
SLOT_PS = 1000.0
SPEC = TMFrameSpec(frame_len=1115, scid=0x42, vcid=1)
OLD = ({"acq_guard_z": 1e6, "acq_symbols": 1024}, {"slot_search": 0})


def _ci(k: int, n: int) -> list:
    from scipy.stats import binomtest
    if n == 0:
        return [float("nan"), float("nan")]
    c = binomtest(k, n).proportion_ci(0.95)
    return [float(c.low), float(c.high)]


def decoder_alone(code, ns, nb, n, seed):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 2, (n, code.k), dtype=np.uint8)
    y = simulate_counts(SCPPMTransmitter(code).modulate(u), ns, nb, rng)
    res = SCPPMReceiver(code, ns, nb).receive(y)
    good = np.asarray(res.crc_ok) & (np.asarray(res.u_hat) == u).all(axis=1)
    err = int(n - good.sum())
    return {"codewords": n, "errors": err, "cer": err / n, "cer_ci95": _ci(err, n)}


def receiver(code, ns, nb, n_rec, n_cw, seed, options=({}, {})):
    tx = SCPPMTransmitter(code)
    ok = emitted = wrong = acq = 0
    offsets: dict = {}
    t0 = time.perf_counter()
    for r in range(n_rec):
        rng = np.random.default_rng(seed + r)
        u = rng.integers(0, 2, (n_cw, code.k), dtype=np.uint8)
        link = TimeTagConfig(slot_width_ps=SLOT_PS, clock_offset_ppm=float(rng.uniform(-250, 250)),
                             drift_ppm_per_s=50.0, jitter_rms_ps=50.0, t0_ps=float(rng.uniform(0, 1e6)))
        tags = simulate_time_tags(tx.modulate(u), ns, nb, rng, link)
        rx = SCPPMTimeTagReceiver(code, SPEC, SLOT_PS, ns, nb, clock_options=options[0], sync_options=options[1])
        decode, push = rx.decoder.receive_stream, rx.cw_sync.push
        got = []

        def decode_and_keep(counts, restart=None, decode=decode, got=got):
            res, src = decode(counts, restart)
            got.extend(res.u_hat[i].tobytes() for i in np.flatnonzero(res.crc_ok))
            return res, src

        def push_and_count(slots, st, push=push):
            blocks, st = push(slots, st)
            for o in blocks.slot_offset.tolist():
                offsets[o] = offsets.get(o, 0) + 1
            return blocks, st

        rx.decoder.receive_stream, rx.cw_sync.push = decode_and_keep, push_and_count
        rx.push(tags.t_ps)
        rx.flush()
        sent = {row.tobytes() for row in u}
        ok += sum(g in sent for g in got)
        wrong += sum(g not in sent for g in got)
        emitted += rx.stats.codewords
        acq += sum(e.kind == "acquired" for e in rx.stats.events)
    n = n_rec * n_cw
    err = max(n - ok, 0)
    P = code.slots_per_symbol
    return {"records": n_rec, "codewords_per_record": n_cw, "codewords_charged": n, "received": ok,
            "emitted": emitted, "undetected_errors": wrong, "acquisitions": acq, "cer": err / n,
            "cer_ci95": _ci(err, n), "seconds": time.perf_counter() - t0,
            "slot_offsets": {str((o + P // 2) % P - P // 2): c for o, c in sorted(offsets.items())}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=16)
    ap.add_argument("--codewords", type=int, default=8, help="codewords per record")
    ap.add_argument("--nb", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--old", action="store_true", help="also the rules before a46c1f3 (slow: no acquisition)")
    ap.add_argument("--only", type=int, nargs="+", default=None, help="PPM orders to run")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    results = []
    for M, points in GRID:
        if args.only and M not in args.only:
            continue
        code = SCPPMCode(M=M, rate="1/2")
        limit = ns_capacity_limit(M, code.rate, args.nb)
        for ns in points:
            n = args.records * args.codewords
            row = {"M": M, "rate": "1/2", "ns": ns, "nb": args.nb, "capacity_limit_ns": limit,
                   "db_above_capacity": 10 * np.log10(ns / limit),
                   "decoder_alone": decoder_alone(code, ns, args.nb, n, args.seed),
                   "receiver": receiver(code, ns, args.nb, args.records, args.codewords, args.seed)}
            if args.old:
                row["receiver_old_rules"] = receiver(code, ns, args.nb, args.records, args.codewords, args.seed, OLD)
            d, r = row["decoder_alone"], row["receiver"]
            line = (f"{M:3d}-PPM ns {ns:4.2f} ({row['db_above_capacity']:+.2f} dB): decoder alone CER "
                    f"{d['errors']}/{d['codewords']}, receiver {r['codewords_charged'] - r['received']}/"
                    f"{r['codewords_charged']} (acquisitions {r['acquisitions']}, offsets {r['slot_offsets']}, "
                    f"undetected {r['undetected_errors']})")
            if args.old:
                o = row["receiver_old_rules"]
                line += f"; old rules {o['codewords_charged'] - o['received']}/{o['codewords_charged']}"
            print(line, flush=True)
            results.append(row)
    report = {"benchmark": "scppm_receiver_sensitivity", "date": dt.date.today().isoformat(),
              "backend_info": be.backend_info("cpu"),
              "command": " ".join(["python3 bench/receiver_sensitivity.py"]
                                  + list(sys.argv[1:] if argv is None else argv)),
              "link": {"slot_width_ps": SLOT_PS, "clock_offset_ppm": "uniform +-250", "drift_ppm_per_s": 50.0,
                       "jitter_rms_ps": 50.0, "max_iter": 16},
              "results": results}
    out = args.out or ROOT / "bench" / "results" / f"receiver_sensitivity_{report['date']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
