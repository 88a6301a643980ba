# SPDX-License-Identifier: Apache-2.0
"""The ``modem`` command-line program.

Subcommands:

* ``modem simulate scppm ...``: SCPPM loopback over a Poisson photon-counting channel.
* ``modem simulate dpsk ...``: DVB-S2 LDPC + DPSK loopback over AWGN or an optical pre-amplified
  receiver, with optional scintillation and a channel interleaver.
* ``modem capacity ...``: the Poisson PPM capacity limit (photons per pulse) of an SCPPM code.
* ``modem link-budget ...``: an optical downlink budget (IOAG OLSG report, Table 1), study or
  measured required photons per pulse.
* ``modem curve scppm|dpsk ...``: FER/BER vs signal level with the capacity limit, PNG + CSV.
* ``modem decode CAPTURE ...``: decode recorded passes (PTU, HDF5, SigMF, .ttbin, .dump) -> frames,
  packets, JSON report (``modem.offline``).
* ``modem capture generate FILE ...``: write a simulated pass (``modem.io.generate``).
* ``modem board emulate|keys|ctl ...``: capture-board emulator (ZeroMQ wire protocol of fpga/),
  CURVE keys, control requests; ``modem receive --board|--gnuradio ENDPOINT ...``: the real-time
  receiver (``modem.board.cli``).
* ``modem info``: which backend would run, and why.

Every report names the backend that ran. Errors print one line (``modem: error: ...``) and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from . import __version__
from .errors import ModemError

CHAINS = {
    "scppm": ("modem.sim.scppm", "SCPPM (CCSDS 142.0-B-1 HPE) over a Poisson photon-counting channel"),
    "dpsk": ("modem.sim.dpsk", "DVB-S2 LDPC+BCH with DPSK over AWGN / optical pre-amplified receiver"),
}


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modem", description="GPU-accelerated software-defined optical modem (SCPPM and DPSK chains).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Backend: MODEM_BACKEND=cpu|gpu|auto (default auto). Run 'modem COMMAND --help' for details.")
    p.add_argument("--version", action="version", version=f"modem {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sim = sub.add_parser("simulate", help="Monte-Carlo loopback of a chain: transmit, channel, decode, count errors",
                         description="Random information through a chain's transmitter, a channel model and the "
                                     "receiver; prints frames, frame/bit errors, FER/BER, iterations, throughput.")
    chains = sim.add_subparsers(dest="chain", metavar="CHAIN")
    chains.required = True
    for name, (mod, text) in CHAINS.items():
        cp = chains.add_parser(name, help=text, description=text)
        try:
            importlib.import_module(mod).add_arguments(cp)
        except ImportError as exc:   # a chain missing from this build still shows in --help
            cp.set_defaults(_import_error=str(exc))
        cp.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
        cp.add_argument("--no-progress", action="store_true", help="no progress bar")
        cp.set_defaults(_module=mod)

    cap = sub.add_parser("capacity", help="Poisson PPM capacity limit of an SCPPM code (photons per pulse)",
                         description="Minimum signal photons per pulse at which the M-PPM Poisson channel "
                                     "capacity equals the SCPPM code's information rate.")
    cap.add_argument("--order", "-M", type=int, nargs="+", default=[16, 64, 128])
    cap.add_argument("--rate", default="1/2")
    cap.add_argument("--nb", type=float, default=0.1, help="background photons per slot")
    cap.add_argument("--json", action="store_true")

    _add_link_budget_parser(sub)
    _add_curve_parser(sub)
    for mod in ("modem.offline", "modem.io.generate", "modem.board.cli", "modem.gpu.bench",
                "modem.sample_loopback"):   # registered by their modules
        importlib.import_module(mod).register(sub)

    sub.add_parser("info", help="backend, device and versions that would run here",
                   description="Show the backend that MODEM_BACKEND selects here, the device, and versions.")
    return p


def _add_link_budget_parser(sub) -> None:
    import dataclasses  # noqa: PLC0415

    from .analysis.link_budget import Scenario  # noqa: PLC0415
    lb = sub.add_parser("link-budget", help="optical downlink budget (IOAG OLSG Table 1 terms), study or measured "
                                            "required photons/pulse",
                        description="Compute a downlink budget as the IOAG Optical Link Study Group report's "
                                    "Table 1 defines it, from a preset scenario, a TOML file and/or options. "
                                    "--required measured takes the required photons/pulse from this modem's "
                                    "measured decoder sensitivity (FER 1e-2) and prints the study's margin beside it.")
    lb.add_argument("--scenario", "-s", help="preset name (see --list) or path of a TOML scenario file")
    lb.add_argument("--list", action="store_true", help="list the preset scenarios")
    lb.add_argument("--required", choices=("study", "measured"), default="study",
                    help="required photons/pulse: the study's figure or this decoder's measurement (default study)")
    lb.add_argument("--json", action="store_true", help="print one JSON object")
    g = lb.add_argument_group("scenario parameters (override the scenario's)")
    for f in dataclasses.fields(Scenario):
        if f.name == "name":
            continue
        typ = int if f.name == "rx_array_size" else (
            str if f.name in ("title", "modulation", "code_rate", "range_label", "notes") else float)
        unit = f" [{f.metadata['unit']}]" if f.metadata.get("unit") else ""
        g.add_argument("--" + f.name.replace("_", "-"), type=typ, default=None, help=f.metadata["help"] + unit)


def _add_curve_parser(sub) -> None:
    cv = sub.add_parser("curve", help="FER/BER curve vs signal level with the capacity/Shannon limit (PNG + CSV)",
                        description="Simulate FER and BER at several signal levels and write OUT.csv and OUT.png "
                                    "with the Poisson capacity limit (SCPPM) or Shannon / BPSK-input limits (DPSK).")
    chains = cv.add_subparsers(dest="chain", metavar="CHAIN")
    chains.required = True
    s = chains.add_parser("scppm", help="FER/BER vs photons per pulse ns")
    s.add_argument("--order", "-M", type=int, default=16)
    s.add_argument("--rate", default="1/2")
    s.add_argument("--nb", type=float, default=0.1, help="background photons per slot")
    s.add_argument("--ns", type=float, nargs="+", default=None, help="signal photons per pulse (points)")
    s.add_argument("--gaps-db", type=float, nargs="+", default=[0.2, 0.35, 0.5, 0.65, 0.8],
                   help="points as dB above the capacity limit (when --ns is not given)")
    s.add_argument("--max-iter", type=int, default=16)
    d = chains.add_parser("dpsk", help="FER/BER vs Es/N0 (awgn) or photons per bit (optical)")
    d.add_argument("--frame", choices=("normal", "short"), default="normal")
    d.add_argument("--rate", default="1/2")
    d.add_argument("--channel", choices=("awgn", "optical"), default="optical")
    d.add_argument("--points", type=float, nargs="+", required=True,
                   help="Es/N0 in dB (awgn) or photons per channel bit (optical)")
    d.add_argument("--nf", type=float, default=None, help="optical: preamplifier noise figure dB (default ideal)")
    d.add_argument("--max-iter", type=int, default=50)
    for cp in (s, d):
        cp.add_argument("--frames", type=int, default=500, help="frames per point at most (default 500)")
        cp.add_argument("--max-errors", type=int, default=50, help="stop a point after this many frame errors")
        cp.add_argument("--seed", type=int, default=1)
        cp.add_argument("--out", required=True, help="output stem: writes OUT.csv and OUT.png")
        cp.add_argument("--json", action="store_true", help="print the points as JSON")
        cp.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_link_budget(args) -> None:
    import dataclasses  # noqa: PLC0415

    from .analysis import link_budget as lbm  # noqa: PLC0415
    if args.list:
        presets = [(name, lbm.load_scenario(name).title) for name in lbm.list_presets()]
        if args.json:
            print(json.dumps([{"name": n, "title": t} for n, t in presets]))
        else:
            for name, title in presets:
                print(f"{name:<12} {title}")
        return
    base = dataclasses.asdict(lbm.load_scenario(args.scenario)) if args.scenario else {"name": "custom"}
    for f in dataclasses.fields(lbm.Scenario):
        v = getattr(args, f.name, None)
        if v is not None and f.name != "name":
            base[f.name] = v
    b = lbm.compute_budget(lbm.scenario_from_dict(base, base.get("name", "custom")), args.required)
    if args.json:
        print(json.dumps(b.as_dict(), default=str))
    else:
        print(lbm.format_budget(b))


def _run_curve(args) -> None:
    from .analysis import curves  # noqa: PLC0415
    if args.chain == "scppm":
        from .analysis.capacity import ns_capacity_limit  # noqa: PLC0415
        pts = args.ns or [ns_capacity_limit(args.order, args.rate, args.nb) * 10 ** (g / 10) for g in args.gaps_db]
    else:
        pts = args.points
    bar, update = _progress_bar(len(pts) * args.frames, not args.json and not args.no_progress)
    try:
        if args.chain == "scppm":
            rows = curves.scppm_curve(args.order, args.rate, args.nb, pts, args.frames, max_iter=args.max_iter,
                                      seed=args.seed, max_errors=args.max_errors, progress=update)
            paths = curves.scppm_curve_files(rows, args.order, args.rate, args.nb, args.out, max_iter=args.max_iter)
        else:
            rows = curves.dpsk_curve(args.frame, args.rate, args.channel, pts, args.frames, nf_db=args.nf,
                                     max_iter=args.max_iter, seed=args.seed, max_errors=args.max_errors,
                                     progress=update)
            paths = curves.dpsk_curve_files(rows, args.frame, args.rate, args.channel, args.out, nf_db=args.nf)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps({"points": rows, "files": [str(p) for p in paths]}, default=float))
    else:
        for r in rows:
            print(f"{r['x']:10.4f} {r['x_unit']:<14} frames {r['frames']:6d}  FER {r['fer']:.3e}  BER {r['ber']:.3e}")
        print("wrote " + ", ".join(str(p) for p in paths))


def _progress_bar(total: int, enabled: bool):
    if not enabled or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm  # noqa: PLC0415
    bar = tqdm(total=total, unit="frame", file=sys.stderr, leave=False)

    def update(n: int):
        if bar.n + n > bar.total:       # simulate dpsk rounds --frames up to whole interleaver blocks
            bar.total = bar.n + n
        bar.update(n)
    return bar, update


def main(argv=None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "simulate":
            if getattr(args, "_import_error", None):
                raise ModemError(f"the {args.chain} chain is not available in this build ({args._import_error})")
            if isinstance(getattr(args, "seed", None), int) and args.seed < 0:   # numpy: a traceback
                raise ModemError(f"{args.chain} simulation: --seed must be an integer >= 0, got seed={args.seed}")
            from .sim.common import print_report  # noqa: PLC0415
            mod = importlib.import_module(args._module)
            bar, update = _progress_bar(args.frames, not args.json and not args.no_progress)
            try:
                rep = mod.run(args, progress=update)
            finally:
                if bar is not None:
                    bar.close()
            print_report(rep, args.json)
        elif args.command == "capacity":
            from .analysis.capacity import ns_capacity_limit  # noqa: PLC0415
            rows = [{"M": M, "rate": args.rate, "nb": args.nb,
                     "ns_limit": ns_capacity_limit(M, args.rate, args.nb)} for M in args.order]
            if args.json:
                print(json.dumps(rows))
            else:
                for r in rows:
                    print(f"M={r['M']:<4} rate={r['rate']} nb={r['nb']}: capacity limit ns = {r['ns_limit']:.4f} "
                          f"photons/pulse")
        elif args.command == "link-budget":
            _run_link_budget(args)
        elif args.command == "curve":
            _run_curve(args)
        elif getattr(args, "_run", None) is not None:    # decode, capture generate (their modules)
            rc = args._run(args)
            if rc:
                return rc
        elif args.command == "info":
            from .backend import backend_info, resolve_backend, unavailable_reason  # noqa: PLC0415
            info = backend_info(resolve_backend())
            reason = unavailable_reason()
            if reason:
                info["gpu_unavailable_because"] = reason
            print(json.dumps(info, indent=2))
    except ModemError as exc:
        print(f"modem: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
