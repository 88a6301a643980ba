#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerate the shipped captures and captures/manifest.json from the generator presets.

    PYTHONPATH=. python3 captures/make_captures.py

Writes (in this folder): snspd16_pass.h5 + snspd16_pass.ptu (the same time tags in both formats),
deepspace128_pass.h5, dpsk_burst_fading.sigmf-meta/.sigmf-data, and manifest.json with, for each
capture, its files, format, link parameters, generator parameters and the SHA-256 of the payload
it must decode to (see modem/io/generate.py: the concatenated non-idle space packets, in order).
Then decodes each file once and records the decoded frame counts (the test checks the hash).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from modem.io.generate import (DPSK_PRESETS, PRESETS, generate_dpsk_pass, generate_scppm_pass,  # noqa: E402
                               manifest_entry, write_pass, write_samples)
from modem.offline import decode_capture  # noqa: E402

PAYLOAD_DEFINITION = ("SHA-256 of the concatenation, in transmission order, of every non-idle CCSDS space "
                      "packet (6-octet primary header + data field) carried by the capture's TM frames; "
                      "modem decode reports it as packets.payload_sha256")


def main():
    captures = {}
    # 16-PPM SNSPD pass, the same tags as HDF5 (the default capture) and PTU T2
    spec = PRESETS["snspd16"]
    g = generate_scppm_pass(spec)
    for fn in ("snspd16_pass.h5", "snspd16_pass.ptu"):
        write_pass(g, os.path.join(HERE, fn), description=spec.description)
    e = manifest_entry(g, ["snspd16_pass.h5"], spec)
    captures["snspd16_pass.h5"] = dict(e, format="hdf5", default=True)
    captures["snspd16_pass.ptu"] = dict(e, files=["snspd16_pass.ptu"], format="ptu-t2")
    spec = PRESETS["deepspace128"]
    g = generate_scppm_pass(spec)
    write_pass(g, os.path.join(HERE, "deepspace128_pass.h5"), description=spec.description)
    captures["deepspace128_pass.h5"] = dict(manifest_entry(g, ["deepspace128_pass.h5"], spec), format="hdf5")
    ds = DPSK_PRESETS["dpsk_burst"]
    gs = generate_dpsk_pass(ds)
    write_samples(gs, os.path.join(HERE, "dpsk_burst_fading"), description=ds.description)
    captures["dpsk_burst_fading.sigmf-meta"] = {
        "files": ["dpsk_burst_fading.sigmf-meta", "dpsk_burst_fading.sigmf-data"], "format": "sigmf",
        "kind": "samples", "link": gs.meta, "generator": gs.generator, "description": ds.description,
        "samples": int(gs.samples.size), "sample_rate": gs.sample_rate, "frames_sent": gs.n_frames,
        "fec_frames_sent": gs.n_fec_frames, "packets": len(gs.packets),
        "payload_octets": int(sum(len(p) for p in gs.packets)), "payload_sha256": gs.payload_sha256}
    for name, e in captures.items():
        rep = decode_capture(os.path.join(HERE, name))
        ok = rep["packets"]["payload_sha256"] == e["payload_sha256"]
        e["decoded"] = {"frames_good": rep["frames"]["good"], "frames_bad": rep["frames"]["bad"],
                        "packets": rep["packets"]["count"], "payload_ok": ok}
        print(f"{name}: {rep['frames']['good']} good / {rep['frames']['bad']} bad frames, "
              f"{rep['packets']['count']} packets, payload {'OK' if ok else 'MISMATCH'}, "
              f"{rep['throughput']['wall_s']:.2f} s")
    manifest = {"version": 1, "payload_definition": PAYLOAD_DEFINITION,
                "generated_by": "PYTHONPATH=. python3 captures/make_captures.py", "default": "snspd16_pass.h5",
                "captures": captures}
    with open(os.path.join(HERE, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=2, default=float)
        fh.write("\n")
    total = sum(os.path.getsize(os.path.join(HERE, f)) for f in os.listdir(HERE))
    print(f"captures/ holds {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
