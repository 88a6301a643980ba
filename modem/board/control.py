# SPDX-License-Identifier: Apache-2.0
"""Board control channel (ZeroMQ REQ/REP, JSON) and the endpoint security rules.

Requests (one JSON object each; see ``fpga/protocol.toml`` for the registers)::

    {"cmd": "configure", "set": {"items_per_message": 8192, ...}}   # only while stopped
    {"cmd": "start"}    {"cmd": "stop"}    {"cmd": "status"}    {"cmd": "read", "names": [...]}

Replies: ``{"ok": true, "registers": {...all registers...}}`` or ``{"ok": false, "error": "..."}``
(the message names the bad command, register or value). A board must answer every request,
malformed ones included, or a REQ client would be stuck.

:class:`ControlClient` is a lazy-pirate client: each request waits ``timeout_ms``; on timeout the
REQ socket is closed and reopened (a REQ that missed its reply cannot send again) and the request
re-sent, up to ``retries`` times, then :class:`BoardTimeout`. Commands are idempotent
(configure writes absolute values, start/stop are states), so a repeated request is harmless.

Security: :func:`bind_socket` binds loopback endpoints (``tcp://127.x.x.x``, ``tcp://localhost``,
``tcp://[::1]``, ``ipc://``, ``inproc://``) as given; any other bind needs CURVE keys (a
directory made by :func:`make_curve_keys`) and is refused with :class:`~modem.errors.ConfigError`
otherwise. The server then only accepts clients whose public keys are in ``DIR/authorized``.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

from ..errors import ConfigError, ModemError
from .protocol import PROTOCOL, REGISTERS

__all__ = ["BoardTimeout", "ControlClient", "RegisterFile", "handle_request", "is_loopback", "bind_socket",
           "connect_socket", "make_curve_keys"]

DEFAULT_TIMEOUT_MS = PROTOCOL["protocol"]["control_timeout_ms"]
DEFAULT_RETRIES = PROTOCOL["protocol"]["control_retries"]


class BoardTimeout(ModemError, TimeoutError):
    """The board did not answer a control request after all retries."""


# ------------------------------------------------------------------------------------------ security
def is_loopback(endpoint: str) -> bool:
    """True for endpoints only this host can reach (tcp on 127/8, localhost, ::1; ipc; inproc)."""
    if not isinstance(endpoint, str) or "://" not in endpoint:
        raise ConfigError(f"endpoint must look like tcp://HOST:PORT, ipc://PATH or inproc://NAME, got {endpoint!r}")
    scheme, rest = endpoint.split("://", 1)
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        raise ConfigError(f"endpoint transport must be tcp, ipc or inproc, got {endpoint!r}")
    host = rest.rsplit(":", 1)[0].strip("[]")
    if ";" in host:                       # tcp://SOURCE;HOST:PORT
        host = host.split(";", 1)[1]
    return host == "localhost" or host == "::1" or host.startswith("127.")


def make_curve_keys(directory, clients=("client",)) -> Path:
    """Create ``DIR/server.key[_secret]``, ``DIR/<client>.key[_secret]`` and ``DIR/authorized/<client>.key``."""
    import zmq.auth  # noqa: PLC0415
    d = Path(directory)
    (d / "authorized").mkdir(parents=True, exist_ok=True)
    zmq.auth.create_certificates(str(d), "server")
    for c in clients:
        pub, _ = zmq.auth.create_certificates(str(d), c)
        (d / "authorized" / Path(pub).name).write_bytes(Path(pub).read_bytes())
    return d


_AUTH = {}


def bind_socket(sock, endpoint: str, curve_dir=None) -> str:
    """Bind ``sock``; loopback freely, anything else only with CURVE keys. Returns the bound endpoint."""
    import zmq  # noqa: PLC0415
    import zmq.auth  # noqa: PLC0415
    import zmq.auth.thread  # noqa: PLC0415
    if curve_dir is None and not is_loopback(endpoint):
        raise ConfigError(f"refusing to bind {endpoint}: not a loopback endpoint and no CURVE keys given "
                          "(use --curve-keys DIR, made by 'modem board keys DIR', or bind tcp://127.0.0.1)")
    if curve_dir is not None:
        d = Path(curve_dir)
        if not (d / "server.key_secret").exists() or not (d / "authorized").is_dir():
            raise ConfigError(f"CURVE key directory {d} must hold server.key_secret and authorized/ "
                              "(make one with 'modem board keys DIR')")
        ctx = sock.context
        if id(ctx) not in _AUTH:
            auth = zmq.auth.thread.ThreadAuthenticator(ctx)
            auth.start()
            auth.configure_curve(domain="*", location=str(d / "authorized"))
            _AUTH[id(ctx)] = auth
        pub, sec = zmq.auth.load_certificate(str(d / "server.key_secret"))
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = sec, pub, True
    sock.bind(endpoint)
    return sock.getsockopt(zmq.LAST_ENDPOINT).decode()


def connect_socket(sock, endpoint: str, curve_dir=None, client: str = "client") -> None:
    """Connect ``sock``; with CURVE keys as client ``client`` of DIR's server key."""
    import zmq.auth  # noqa: PLC0415
    if curve_dir is not None:
        d = Path(curve_dir)
        pub, sec = zmq.auth.load_certificate(str(d / f"{client}.key_secret"))
        spub, _ = zmq.auth.load_certificate(str(d / "server.key"))
        sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = sec, pub, spub
    sock.connect(endpoint)


def close_auth(ctx) -> None:
    auth = _AUTH.pop(id(ctx), None)
    if auth is not None:
        auth.stop()


# ------------------------------------------------------------------------------------------ server side
class RegisterFile:
    """The board's registers (defaults from protocol.toml), thread-safe; ``running`` is a state."""

    def __init__(self, **values):
        self._lock = threading.Lock()
        self.values = {n: r.default for n, r in REGISTERS.items()}
        for k, v in values.items():
            if k not in REGISTERS:
                raise ConfigError(f"RegisterFile: unknown register {k!r}")
            self.values[k] = v

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self.values)

    def set(self, name, value):
        with self._lock:
            self.values[name] = value

    def add(self, name, n=1):
        with self._lock:
            self.values[name] += n


def handle_request(regs: RegisterFile, raw: bytes, on_configure=None) -> dict:
    """One control request -> reply dict (never raises: a bad request gets an error reply).

    ``on_configure(new_values)`` may veto a configuration by raising ConfigError (cross-register
    checks, e.g. payload_kind vs sample_dtype)."""
    try:
        try:
            req = json.loads(bytes(raw).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ConfigError(f"control request is not JSON: {str(exc)[:200]}") from None
        if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
            raise ConfigError(f"control request must be an object with a string 'cmd', got {str(req)[:80]!r}")
        cmd = req["cmd"]
        if cmd == "configure":
            new = req.get("set")
            if not isinstance(new, dict) or not new:
                raise ConfigError("configure: 'set' must be a non-empty object {register: value}")
            if regs.snapshot()["running"]:
                raise ConfigError("configure: the board is running; stop it first")
            checked = {}
            for k, v in new.items():
                if k not in REGISTERS:
                    raise ConfigError(f"configure: unknown register {k!r} (known: {', '.join(REGISTERS)})")
                checked[k] = REGISTERS[k].check(v)
            merged = {**regs.snapshot(), **checked}
            if (merged["payload_kind"] == 1) != (merged["sample_dtype"] == 1):
                raise ConfigError(f"configure: payload_kind {merged['payload_kind']} does not go with sample_dtype "
                                  f"{merged['sample_dtype']} (time tags are INT64_TAG = 1, samples 2..4)")
            if on_configure is not None:
                on_configure(merged)
            for k, v in checked.items():
                regs.set(k, v)
        elif cmd == "start":
            regs.set("running", 1)
        elif cmd == "stop":
            regs.set("running", 0)
        elif cmd == "read":
            names = req.get("names")
            if not isinstance(names, list) or not all(isinstance(n, str) and n in REGISTERS for n in names):
                raise ConfigError(f"read: 'names' must be a list of registers, got {names!r}")
            snap = regs.snapshot()
            return {"ok": True, "registers": {n: snap[n] for n in names}}
        elif cmd != "status":
            raise ConfigError(f"unknown command {cmd!r} (configure, start, stop, status, read)")
        return {"ok": True, "registers": regs.snapshot()}
    except ConfigError as exc:
        return {"ok": False, "error": str(exc)}


# ------------------------------------------------------------------------------------------ client side
class ControlClient:
    """Lazy-pirate REQ client of a board's control endpoint (see the module docstring)."""

    def __init__(self, endpoint: str, timeout_ms: int = DEFAULT_TIMEOUT_MS, retries: int = DEFAULT_RETRIES,
                 curve_dir=None, context=None):
        import zmq  # noqa: PLC0415
        if not isinstance(timeout_ms, int) or timeout_ms <= 0:
            raise ConfigError(f"ControlClient: timeout_ms must be a positive int, got {timeout_ms!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"ControlClient: retries must be an int >= 0, got {retries!r}")
        is_loopback(endpoint)
        self.endpoint, self.timeout_ms, self.retries, self.curve_dir = endpoint, timeout_ms, retries, curve_dir
        self.ctx = context or zmq.Context.instance()
        self.attempts = 0          # requests sent, retries included
        self._sock = None

    def _open(self):
        import zmq  # noqa: PLC0415
        s = self.ctx.socket(zmq.REQ)
        s.linger = 0
        connect_socket(s, self.endpoint, self.curve_dir)
        self._sock = s

    def request(self, cmd: str, **fields) -> dict:
        """Send ``{"cmd": cmd, **fields}``; return the reply dict (``ok`` False replies included)."""
        import zmq  # noqa: PLC0415
        msg = json.dumps({"cmd": cmd, **fields}).encode()
        for _ in range(self.retries + 1):
            if self._sock is None:
                self._open()
            self._sock.send(msg)
            self.attempts += 1
            if self._sock.poll(self.timeout_ms, zmq.POLLIN):
                return json.loads(self._sock.recv())
            self._sock.close()          # lazy pirate: a REQ without its reply is stuck; start over
            self._sock = None
        raise BoardTimeout(f"board control {self.endpoint}: no reply to {cmd!r} after {self.retries + 1} attempts "
                           f"of {self.timeout_ms} ms")

    def call(self, cmd: str, **fields) -> dict:
        """Like :meth:`request` but an error reply raises ConfigError with the board's message."""
        rep = self.request(cmd, **fields)
        if not rep.get("ok"):
            raise ConfigError(f"board refused {cmd}: {rep.get('error')}")
        return rep["registers"]

    def configure(self, **registers) -> dict:
        return self.call("configure", set=registers)

    def start(self) -> dict:
        return self.call("start")

    def stop(self) -> dict:
        return self.call("stop")

    def status(self) -> dict:
        return self.call("status")

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
