# SPDX-License-Identifier: Apache-2.0
"""The ``modem`` command-line program.

Subcommands:

* ``modem simulate scppm ...``: SCPPM loopback over a Poisson photon-counting channel.
* ``modem simulate dpsk ...``: DVB-S2 LDPC + DPSK loopback over AWGN or an optical pre-amplified
  receiver, with optional scintillation and a channel interleaver.
* ``modem capacity ...``: the Poisson PPM capacity limit (photons per pulse) of an SCPPM code.
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

    sub.add_parser("info", help="backend, device and versions that would run here",
                   description="Show the backend that MODEM_BACKEND selects here, the device, and versions.")
    return p


def _progress_bar(total: int, enabled: bool):
    if not enabled or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm  # noqa: PLC0415
    bar = tqdm(total=total, unit="frame", file=sys.stderr, leave=False)
    return bar, bar.update


def main(argv=None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "simulate":
            if getattr(args, "_import_error", None):
                raise ModemError(f"the {args.chain} chain is not available in this build ({args._import_error})")
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
