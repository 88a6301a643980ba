# SPDX-License-Identifier: Apache-2.0
"""``modem board emulate|keys|ctl`` and ``modem receive``: registered into the modem CLI by
:func:`register` (see modem/cli.py)."""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

from ..errors import ConfigError
from ..cliargs import parse_key_values

__all__ = ["register"]


def _seqs(text: str) -> frozenset:
    """'3,7,10-12' -> {3, 7, 10, 11, 12}."""
    out = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                out |= set(range(int(a), int(b) + 1))
            else:
                out.add(int(part))
        except ValueError:
            raise ConfigError(f"message list must look like 3,7,10-12, got {text!r}") from None
    return frozenset(out)


def register(subparsers) -> None:
    """Add ``modem board ...`` and ``modem receive`` to the CLI's subparsers."""
    b = subparsers.add_parser("board", help="capture-board interface: emulator, CURVE keys, control requests",
                              description="The FPGA capture-board side of the ZeroMQ wire protocol "
                                          "(fpga/README.md): an emulator, CURVE key generation and a control client.")
    bs = b.add_subparsers(dest="board_command", metavar="COMMAND")
    bs.required = True

    e = bs.add_parser("emulate", help="stream a capture or a live simulated link in the board protocol",
                      description="Board emulator: binds a PUSH data socket (and a REP control socket) and streams "
                                  "time tags or samples as board messages at a chosen real-time rate, with fault "
                                  "injection. Message numbers in the fault lists count source messages from 0.")
    e.add_argument("--source", default="sim", help="'sim' (a live simulated SCPPM link) or a capture file path")
    e.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="data endpoint to bind (default %(default)s)")
    e.add_argument("--control", default=None, metavar="ENDPOINT", help="control endpoint to bind (REQ/REP JSON)")
    e.add_argument("--wait-start", action="store_true", help="with --control: stream only after a 'start' request")
    e.add_argument("--rate", type=float, default=1.0,
                   help="playback speed: 1 = real time, 0.01 = 1%% of it, 0 = as fast as possible (default 1)")
    e.add_argument("--items-per-message", type=int, default=4096)
    e.add_argument("--stream-id", type=int, default=0)
    e.add_argument("--max-messages", type=int, default=None, help="stop after this many source messages")
    g = e.add_argument_group("simulated link (--source sim)")
    g.add_argument("--frames", type=int, default=40, help="transfer frames per pass (default 40)")
    g.add_argument("--loop", action="store_true", help="repeat the pass forever (continuous slot clock)")
    g.add_argument("--order", "-M", type=int, default=16)
    g.add_argument("--code-rate", default="1/2")
    g.add_argument("--ns", type=float, default=3.0, help="signal photons per pulse")
    g.add_argument("--nb", type=float, default=0.02, help="background photons per slot")
    g.add_argument("--slot-ps", type=float, default=1000.0)
    g.add_argument("--seed", type=int, default=1)
    f = e.add_argument_group("fault injection (message numbers like 3,7,10-12)")
    for name, text in (("drop", "messages not sent"), ("duplicate", "messages sent twice"),
                       ("reorder", "messages sent after the next one"),
                       ("overflow", "messages lost in the board FIFO (OVERFLOW flag on the next)"),
                       ("restart", "board restarts before these messages (seq back to 0, RESTART flag)")):
        f.add_argument(f"--{name}", type=_seqs, default=frozenset(), metavar="LIST", help=text)
    f.add_argument("--drop-rate", type=float, default=0.0)
    f.add_argument("--duplicate-rate", type=float, default=0.0)
    f.add_argument("--reorder-rate", type=float, default=0.0)
    f.add_argument("--fault-seed", type=int, default=0)
    e.add_argument("--curve-keys", metavar="DIR", help="CURVE keys (required to bind a non-loopback endpoint)")
    e.add_argument("--json", action="store_true", help="print the run summary as JSON")
    e.set_defaults(_run=_run_emulate)

    k = bs.add_parser("keys", help="make CURVE keys: DIR/server.key[_secret], client keys, DIR/authorized/",
                      description="Create a CURVE key directory for --curve-keys (ZeroMQ CURVE, zmq.auth).")
    k.add_argument("dir")
    k.add_argument("--clients", default="client", help="comma-separated client names (default client)")
    k.set_defaults(_run=_run_keys)

    c = bs.add_parser("ctl", help="send one control request (configure, start, stop, status, read)",
                      description="Lazy-pirate control client: prints the board's JSON reply; exit 2 on an error reply.")
    c.add_argument("--control", required=True, metavar="ENDPOINT")
    c.add_argument("cmd", choices=("configure", "start", "stop", "status", "read"))
    c.add_argument("args", nargs="*", metavar="REGISTER=VALUE", help="configure: registers to set; read: names")
    c.add_argument("--timeout-ms", type=int, default=None)
    c.add_argument("--retries", type=int, default=None)
    c.add_argument("--curve-keys", metavar="DIR")
    c.set_defaults(_run=_run_ctl)

    r = subparsers.add_parser("receive", help="real-time receiver on a board or GNU Radio ZeroMQ stream",
                              description="Decode a live board stream (--board, this protocol) or a GNU Radio ZMQ sink "
                                          "stream (--gnuradio, raw items) into checked TM frames and space packets: "
                                          "files in --out, ZeroMQ PUB on --publish, status PUB and Prometheus metrics.")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--board", metavar="ENDPOINT", help="board data endpoint (the board binds PUSH)")
    src.add_argument("--gnuradio", metavar="ENDPOINT", help="GNU Radio ZMQ PUSH/PUB sink endpoint (raw items)")
    r.add_argument("--gnuradio-socket", choices=("pull", "sub"), default="pull", help="pull for a PUSH sink, sub for PUB")
    r.add_argument("--gnuradio-dtype", choices=("float32", "int16", "complex64"), default="float32")
    r.add_argument("--sample-rate", type=float, default=1.0, help="GNU Radio stream sample rate in Hz")
    r.add_argument("--control", metavar="ENDPOINT", help="board control endpoint: read the link parameters from "
                                                         "its status and start it once connected")
    r.add_argument("--meta", metavar="FILE", help="link parameters (JSON or TOML, the capture metadata schema)")
    r.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="set / override a link parameter")
    r.add_argument("--out", metavar="DIR", help="write frames.bin/.jsonl, packets.bin/.jsonl, events.jsonl, stats.json "
                                                "(a DIR holding a run's files is refused unless --append)")
    r.add_argument("--append", action="store_true", help="append this run's frames, packets, events and stream to "
                                                         "the files already in --out (stats.json is this run's)")
    r.add_argument("--publish", metavar="ENDPOINT", default="tcp://127.0.0.1:5557",
                   help="PUB endpoint for frames, packets, events and status (default %(default)s; 'none' to disable)")
    r.add_argument("--status", metavar="ENDPOINT", help="separate status PUB endpoint")
    r.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics over HTTP on this port")
    r.add_argument("--metrics-addr", default="127.0.0.1")
    r.add_argument("--until-eos", action="store_true", help="stop after the board's END_OF_STREAM message")
    r.add_argument("--duration", type=float, default=None, help="stop after this many seconds (what was received is still decoded and written)")
    r.add_argument("--batch-items", type=int, default=None, help="items per decoder batch (default: ~8 codewords)")
    r.add_argument("--ring-messages", type=int, default=1024)
    r.add_argument("--reorder-window", type=int, default=8)
    r.add_argument("--status-interval", type=float, default=1.0)
    r.add_argument("--record", action="store_true", help="also write the raw stream to DIR/stream.<ext>")
    r.add_argument("--curve-keys", metavar="DIR")
    r.add_argument("--json", action="store_true", help="print the final status as JSON")
    r.add_argument("--quiet", action="store_true", help="no status lines on stderr")
    r.set_defaults(_run=_run_receive)


# ------------------------------------------------------------------------------------------------
def _run_emulate(args) -> int:
    from .emulator import BoardEmulator, FaultPlan, SimulatedLink, capture_source  # noqa: PLC0415
    if args.source == "sim":
        src = SimulatedLink(order=args.order, rate=args.code_rate, n_frames=args.frames, ns=args.ns, nb=args.nb,
                            slot_ps=args.slot_ps, seed=args.seed, loop=args.loop)
    else:
        if not Path(args.source).exists():
            raise ConfigError(f"--source: no such capture file {args.source!r} (or use 'sim')")
        src = capture_source(args.source)
    faults = FaultPlan(drop=args.drop, duplicate=args.duplicate, reorder=args.reorder, overflow=args.overflow,
                       restart=args.restart, drop_rate=args.drop_rate, duplicate_rate=args.duplicate_rate,
                       reorder_rate=args.reorder_rate, seed=args.fault_seed)
    emu = BoardEmulator(src, args.endpoint, args.control, items_per_message=args.items_per_message,
                        stream_id=args.stream_id, rate_factor=args.rate, faults=faults, curve_dir=args.curve_keys)
    print(f"board emulator: data {emu.data_endpoint}" + (f", control {emu.control_endpoint}" if emu.control else "")
          + f", rate {args.rate:g}x real time", file=sys.stderr, flush=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *a: emu.stop())
    try:
        res = emu.run(autostart=not args.wait_start, max_messages=args.max_messages)
    except KeyboardInterrupt:
        emu.stop()
        res = {"interrupted": True, "faults": emu.log, "registers": emu.regs.snapshot()}
    finally:
        emu.close()
    if args.json:
        print(json.dumps(res, default=str))
    else:
        r = res.get("registers", {})
        print(f"sent {r.get('messages_sent')} messages, faults injected: {len(res.get('faults', []))}, "
              f"overflows {r.get('overflows')}, {res.get('seconds', 0):.2f} s")
    return 0


def _run_keys(args) -> int:
    from .control import make_curve_keys  # noqa: PLC0415
    d = make_curve_keys(args.dir, [c for c in args.clients.split(",") if c])
    print(f"CURVE keys in {d}: server.key_secret (board / receiver side), <client>.key_secret (clients), "
          f"authorized/ (public keys the server accepts)")
    return 0


def _run_ctl(args) -> int:
    from .control import DEFAULT_RETRIES, DEFAULT_TIMEOUT_MS, ControlClient  # noqa: PLC0415
    c = ControlClient(args.control, timeout_ms=args.timeout_ms or DEFAULT_TIMEOUT_MS,
                      retries=DEFAULT_RETRIES if args.retries is None else args.retries, curve_dir=args.curve_keys)
    try:
        if args.cmd == "configure":
            rep = c.request("configure", set=parse_key_values(args.args, "configure argument"))
        elif args.cmd == "read":
            rep = c.request("read", names=list(args.args))
        else:
            rep = c.request(args.cmd)
    finally:
        c.close()
    print(json.dumps(rep))
    return 0 if rep.get("ok") else 2


def _load_meta(path: str) -> dict:
    import tomllib  # noqa: PLC0415
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"--meta: no such file {path!r}")
    try:
        return tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--meta {path}: not valid {'TOML' if p.suffix == '.toml' else 'JSON'} ({exc})") from None


def batch_items_for(meta: dict) -> int:
    """Items per decoder batch: about 8 codewords of time tags (from M, ns, nb), else 2**17."""
    try:
        from ..fec.scppm import SCPPMCode  # noqa: PLC0415
        code = SCPPMCode(M=int(meta["M"]), rate=meta.get("rate", "1/2"))
        per_cw = code.symbols_per_codeword * (float(meta["ns"]) + code.slots_per_symbol * float(meta["nb"]))
        return int(min(max(8 * per_cw, 4096), 1 << 20))
    except (KeyError, TypeError, ValueError):
        return 1 << 17


def _run_receive(args) -> int:
    from .control import ControlClient  # noqa: PLC0415
    from .realtime import RealtimeConfig, RealtimeReceiver  # noqa: PLC0415
    meta = _load_meta(args.meta) if args.meta else {}
    ctl = None
    if args.control:
        ctl = ControlClient(args.control, curve_dir=args.curve_keys)
        rep = ctl.request("status")
        if not rep.get("ok"):
            raise ConfigError(f"board status refused: {rep.get('error')}")
        meta = {**rep.get("meta", {}), **meta}
    meta.update(parse_key_values(args.param))
    factory = None
    if meta.get("chain"):
        from ..backend import fec_launcher  # noqa: PLC0415
        from ..offline import receiver_for  # noqa: PLC0415
        launcher = fec_launcher()                            # MODEM_BACKEND: the FEC decoder on the GPU or CPU
        # decode_batch=1: the real-time receiver decodes every codeword a batch of --batch-items completes
        # (latency stays bounded by the batch, even when the link drops); no codewords held across batches
        receiver_for(meta, launcher, decode_batch=1)         # validate now: errors before any socket work
        factory = lambda: receiver_for(meta, launcher, decode_batch=1)   # noqa: E731
    elif not args.out:
        raise ConfigError("no link parameters (give --meta, --param chain=..., or --control of a board that "
                          "reports them) and no --out to record the raw stream to: nothing to do")
    cfg = RealtimeConfig(batch_items=args.batch_items or batch_items_for(meta), ring_messages=args.ring_messages,
                         reorder_window=args.reorder_window, status_interval_s=args.status_interval)
    publish = None if (args.publish or "").lower() == "none" else args.publish
    rx = RealtimeReceiver(board=args.board, gnuradio=args.gnuradio, decoder_factory=factory, config=cfg,
                          out_dir=args.out, publish=publish, status=args.status, gnuradio_dtype=args.gnuradio_dtype,
                          gnuradio_rate=args.sample_rate, gnuradio_socket=args.gnuradio_socket, record=args.record,
                          curve_dir=args.curve_keys, keep_frames=False,   # frames go to files / PUB, not memory
                          append=args.append)
    if args.metrics_port is not None:
        from prometheus_client import start_http_server  # noqa: PLC0415
        start_http_server(args.metrics_port, addr=args.metrics_addr, registry=rx.metrics_registry())
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
    rx.start()
    if ctl is not None:
        try:
            ctl.start()                                      # connected first, so nothing is missed
        except BaseException:
            rx.stop(drain=False)                             # board refused / timed out: no receiver left running
            raise
        finally:
            ctl.close()
    t_end = None if args.duration is None else time.monotonic() + args.duration
    interrupted = False
    try:
        while not stop.is_set():
            if args.until_eos and rx.eos_event.is_set():
                break
            if t_end is not None and time.monotonic() >= t_end:
                break
            stop.wait(args.status_interval)
            if not args.quiet:
                s = rx.status()
                fer = "-" if s["fer"] is None else f"{s['fer']:.3g}"
                print(f"[{s['lock']:6s}] msgs {s['messages']} frames {s['frames_valid']}/{s['frames']} FER {fer} "
                      f"packets {s['packets']} rate {s['item_rate_stream']:.3g}/s backlog {s['backlog_messages']} "
                      f"lost {s['lost_messages']} gaps {s['gaps']} dup {s['duplicates']} ovf {s['overflows']} "
                      f"bp-drop {s['backpressure_chunks']} rejected {s['rejected_total']}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
    # end of stream or of --duration: the tail received is decoded and written; an interrupt
    # (Ctrl-C, SIGTERM) does not wait for the backlog (discarded, counted in discarded_at_stop)
    rx.stop(drain=not (interrupted or stop.is_set()))
    st = rx.status()
    if args.json:
        print(json.dumps(st, default=str))
    else:
        print(f"messages {st['messages']}, frames {st['frames']} ({st['frames_valid']} valid), packets {st['packets']}, "
              f"lost messages {st['lost_messages']} in {st['gaps']} gaps, duplicates {st['duplicates']}, "
              f"overflows {st['overflows']}, restarts {st['restarts']}, backpressure drops {st['backpressure_chunks']}, "
              f"rejected {st['rejected_total']}")
    return 0
