# SPDX-License-Identifier: Apache-2.0
"""``modem samples CHAIN``: sample-domain loopback of the receivers in :mod:`modem.sample_receiver`.

Random space packets -> TM transfer frames -> the chain's transmitter (SCPPM + APD ADC samples, or
DVB-S2 + burst-mode DPSK balanced-detector samples, with the link's clock offset and noise) ->
the sample receiver fed in chunks -> one report: frames sent / valid / flagged bad / missing,
undetected errors (valid but not sent: must be 0), codewords and their failures, samples and
receive throughput. Link parameters are the receiver's dict keys (``--param KEY=VALUE``, JSON
values), so a report line reproduces a capture's metadata.

The module stays light (the receiver is imported when the command runs).
"""
from __future__ import annotations

import json
import time

import numpy as np

from .errors import ConfigError
from .cliargs import parse_key_values

CHAINS = ("scppm-apd", "dpsk")


def register(subparsers) -> None:
    """Add ``modem samples`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "samples", help="sample-domain loopback: TM frames -> APD/DPSK samples -> sample receiver -> report",
        description="Transmit random TM frames through the SCPPM/APD or DVB-S2/DPSK sample model and decode "
                    "them with the streaming sample receiver (modem.sample_receiver), chunk by chunk.")
    p.add_argument("chain", choices=CHAINS)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="link parameter (SCPPMAPDLink / DPSKLink field, JSON value), e.g. --param ppb=3")
    p.add_argument("--frames", type=int, default=20, help="TM frames to send (default 20)")
    p.add_argument("--chunk", type=int, default=1 << 16, help="samples per receiver push (default 65536)")
    p.add_argument("--lead-slots", type=int, default=1000, help="dark slots before the signal (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(_run=run_cli)


def loopback(chain: str, params: dict | None = None, n_frames: int = 20, chunk: int = 1 << 16,
             lead_slots: int = 1000, seed: int = 1, launcher=None) -> dict:
    """Run one loopback; returns the report dict (see the module docstring). ``launcher``: where
    the receiver's FEC decoder runs (None: the CPU; :func:`modem.backend.fec_launcher`)."""
    from .backend import launcher_name  # noqa: PLC0415
    from .sample_receiver import (DPSKSampleReceiver, SCPPMSampleReceiver, dpsk_transmit_frames,  # noqa: PLC0415
                                  link_from_dict, random_tm_frames, scppm_apd_transmit)
    if chain not in CHAINS:
        raise ConfigError(f"samples loopback: chain must be one of {CHAINS}, got {chain!r}")
    for name, v, lo in (("n_frames", n_frames, 1), ("chunk", chunk, 1), ("lead_slots", lead_slots, 0),
                        ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ConfigError(f"samples loopback: {name} must be an integer >= {lo}, got {name}={v!r}")
    link = link_from_dict({**(params or {}), "chain": chain})
    frames = random_tm_frames(link.spec, n_frames, seed=seed)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    if chain == "dpsk":
        y = dpsk_transmit_frames(frames, link, rng, lead_slots=lead_slots)
        rx = DPSKSampleReceiver(link, launcher=launcher)
    else:
        y = scppm_apd_transmit(frames, link, rng, lead_slots=lead_slots)
        rx = SCPPMSampleReceiver(link, launcher=launcher)
    t_tx = time.perf_counter() - t0
    y = y.astype(np.float32)
    got = []
    t0 = time.perf_counter()
    for a in range(0, y.size, chunk):
        got += rx.push(y[a:a + chunk])
    got += rx.flush()
    t_rx = time.perf_counter() - t0
    sent = {f: i for i, f in enumerate(frames)}
    valid = [f for f in got if f.valid]
    received = {sent[f.data] for f in valid if f.data in sent}
    st = rx.stats
    record_s = y.size / link.sample_rate_hz
    return {
        "chain": chain, "link": link.to_dict(), "frames_sent": len(frames), "frames_valid": len(valid),
        "frames_flagged_bad": len(got) - len(valid), "frames_missing": len(frames) - len(received),
        "undetected_errors": sum(f.data not in sent for f in valid),
        "codewords": st.codewords, "codewords_failed": st.codewords_crc_failed,
        "frame_sync_restarts": st.frame_sync_restarts, "samples": int(y.size), "record_s": record_s,
        "transmit_s": t_tx, "receive_s": t_rx, "samples_per_s": y.size / t_rx if t_rx > 0 else float("nan"),
        "real_time_factor": record_s / t_rx if t_rx > 0 else float("nan"),
        "backend": launcher_name(launcher),
    }


def run_cli(args) -> int:
    from .backend import fec_launcher  # noqa: PLC0415
    rep = loopback(args.chain, parse_key_values(args.param), args.frames, args.chunk, args.lead_slots, args.seed,
                   launcher=fec_launcher())
    if args.json:
        print(json.dumps(rep, default=float))
        return 0
    lk = rep["link"]
    sig = f"ppb={lk['ppb']}" if rep["chain"] == "dpsk" else f"ns={lk['ns']} nb={lk['nb']}"
    print(f"{rep['chain']} samples loopback ({sig}, ppm={lk['ppm']}, sps={lk['sps']})")
    print(f"  frames     sent {rep['frames_sent']}  valid {rep['frames_valid']}  flagged bad "
          f"{rep['frames_flagged_bad']}  missing {rep['frames_missing']}  undetected errors {rep['undetected_errors']}")
    print(f"  codewords  {rep['codewords']}  failed {rep['codewords_failed']}  frame-sync restarts "
          f"{rep['frame_sync_restarts']}")
    print(f"  receive    {rep['samples']} samples in {rep['receive_s']:.2f} s = {rep['samples_per_s'] / 1e6:.2f} "
          f"Msamples/s ({rep['real_time_factor']:.2e} x real time), FEC on {rep['backend']}")
    return 0 if rep["undetected_errors"] == 0 else 1
