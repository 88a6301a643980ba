# SPDX-License-Identifier: Apache-2.0
"""Board wire protocol: one definition (fpga/protocol.toml) for Python and the C header, message
validation, control channel (error replies, lazy-pirate retries), CURVE on non-loopback binds."""
import json
import shutil
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import zmq

from modem.board import protocol as P
from modem.board.control import (BoardTimeout, ControlClient, RegisterFile, bind_socket, handle_request, is_loopback,
                                 make_curve_keys)
from modem.board.emulator import ArraySource, BoardEmulator
from modem.errors import ConfigError

FPGA = Path(__file__).resolve().parents[1] / "fpga"


def test_generated_header_is_up_to_date():
    r = subprocess.run([sys.executable, str(FPGA / "gen_header.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_c_header_layout_and_constants_match_python(tmp_path):
    """Compile a C program against fpga/modem_board.h that prints sizeof / offsetof of every header
    field and every constant; compare with the Python definition."""
    pre = "MODEM_BOARD_"
    lines = ['printf("size %zu\\n", sizeof(modem_board_header_t));']
    for name, _, _ in P.HEADER_FIELDS:
        lines.append(f'printf("off {name} %zu %zu\\n", offsetof(modem_board_header_t, {name}), '
                     f'sizeof(((modem_board_header_t*)0)->{name}));')
    consts = {"VERSION": P.VERSION, "MAGIC": P.MAGIC, "HEADER_LEN": P.HEADER_LEN, "MAX_PAYLOAD_LEN": P.MAX_PAYLOAD_LEN}
    consts.update({f"KIND_{k.name}": int(k) for k in P.PayloadKind})
    consts.update({f"DTYPE_{k.name}": int(k) for k in P.SampleDtype})
    consts.update({f"DTYPE_{k.name}_SIZE": P.itemsize(k) for k in P.SampleDtype})
    consts.update({f"FLAG_{k.name}": int(k) for k in P.Flags})
    consts.update({f"REG_{r.name.upper()}": r.address for r in P.REGISTERS.values()})
    for c in consts:
        lines.append(f'printf("const {c} %llu\\n", (unsigned long long){pre}{c});')
    src = tmp_path / "t.c"
    src.write_text('#include <stdio.h>\n#include "modem_board.h"\nint main(void){\n' + "\n".join(lines)
                   + "\nreturn 0;}\n")
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-pedantic", f"-I{FPGA}", str(src), "-o", str(exe)],
                   check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split("\n")
    got = {tuple(w[:2]): w[2:] for w in (ln.split() for ln in out) if w}
    assert got[("size", "64")] == [] and P.HEADER_LEN == 64
    for name, typ, off in P.HEADER_FIELDS:
        assert got[("off", name)] == [str(off), str(P.HEADER_DTYPE.fields[name][0].itemsize)], name
    for c, v in consts.items():
        assert got[("const", c)] == [str(v)], c
    # and the bytes: a header packed by Python, read through the C struct layout (numpy dtype from
    # the same offsets) gives the same field values
    parts = P.pack_message(np.arange(5, dtype=np.int64) * 7 + 100, seq=2**40 + 3, stream_id=9, flags=P.Flags.OVERFLOW)
    rec = np.frombuffer(parts[0], P.HEADER_DTYPE)[0]
    assert rec["magic"] == P.MAGIC and rec["seq"] == 2**40 + 3 and rec["first"] == 100 and rec["span"] == 28
    assert rec["stream_id"] == 9 and rec["flags"] == 1 and rec["payload_len"] == 40 and rec["n_items"] == 5
    assert bytes(parts[0][:4]) == b"OMBD"


@pytest.mark.parametrize("dtype", ["int64", "float32", "int16", "complex64"])
def test_pack_parse_round_trip(dtype):
    rng = np.random.default_rng(1)
    a = (np.sort(rng.integers(0, 10**9, 1000)) if dtype == "int64" else rng.normal(size=1000) * 100).astype(dtype)
    parts = P.pack_message(a, seq=77, first=None if dtype == "int64" else 5000, sample_rate=2.5e9)
    h, items = P.parse_message(parts)
    np.testing.assert_array_equal(items, a)
    assert h.seq == 77 and h.n_items == 1000 and h.payload_crc32 == zlib.crc32(parts[1])
    assert h.payload_kind == (P.PayloadKind.TIME_TAGS if dtype == "int64" else P.PayloadKind.SAMPLES)


def _good():
    return P.pack_message(np.arange(100, dtype=np.int64), seq=1)


def _with(field, value):
    h, p = _good()
    rec = np.frombuffer(h, P.HEADER_DTYPE).copy()
    rec[field] = value
    return [rec.tobytes(), p]


MALFORMED = {
    "parts": [b"x"],
    "short_header": [_good()[0][:40], _good()[1]],
    "bad_magic": _with("magic", 0x12345678),
    "bad_version": _with("version", P.VERSION + 1),
    "bad_header_len": [_good()[0] + b"\0" * 8, _good()[1]],
    "bad_kind": _with("payload_kind", 7),
    "bad_dtype": _with("sample_dtype", 2),
    "oversize": _with("payload_len", P.MAX_PAYLOAD_LEN + 8),
    "length_mismatch": [_good()[0], _good()[1][:-8]],
    "crc": [_good()[0], b"\1" + _good()[1][1:]],
    "bad_tags": P.pack_message(np.array([5, 3, 9], np.int64), seq=0),
}


@pytest.mark.parametrize("reason", sorted(MALFORMED))
def test_malformed_messages_rejected_with_reason(reason):
    parts = MALFORMED[reason]
    with pytest.raises(P.MessageError) as e:
        P.parse_message(parts)
    assert e.value.reason == reason


def test_pack_message_checks_arguments():
    with pytest.raises(ConfigError, match="1-D"):
        P.pack_message(np.zeros((2, 2), np.int64), seq=0)
    with pytest.raises(ConfigError, match="float64"):
        P.pack_message(np.zeros(3), seq=0)
    with pytest.raises(ConfigError, match="first"):
        P.pack_message(np.zeros(3, np.float32), seq=0)


@pytest.mark.parametrize("req,match", [
    (b"not json", "not JSON"),
    (b'{"cmd": 3}', "string 'cmd'"),
    (b'{"cmd": "launch"}', "unknown command 'launch'"),
    (b'{"cmd": "configure", "set": {"items_per_message": 0}}', r"items_per_message must be a u32 in \[1, 2097152\], got 0"),
    (b'{"cmd": "configure", "set": {"items_per_message": 1.5}}', "got 1.5"),
    (b'{"cmd": "configure", "set": {"items_per_message": true}}', "got True"),
    (b'{"cmd": "configure", "set": {"gain": 3}}', "unknown register 'gain'"),
    (b'{"cmd": "configure", "set": {"next_seq": 3}}', "read-only"),
    (b'{"cmd": "configure", "set": {}}', "non-empty"),
    (b'{"cmd": "configure", "set": {"sample_dtype": 2}}', "does not go with"),
    (b'{"cmd": "read", "names": ["nope"]}', "names"),
])
def test_control_bad_arguments_get_error_reply(req, match):
    import re
    regs = RegisterFile()
    rep = handle_request(regs, req)
    assert rep["ok"] is False and re.search(match, rep["error"]), rep
    assert regs.snapshot() == RegisterFile().snapshot()          # nothing changed


def test_control_over_zmq_configure_start_stop_and_errors():
    """A real emulator control socket: good requests change registers, bad ones get error replies,
    configure while running is refused."""
    emu = BoardEmulator(ArraySource(np.arange(10, dtype=np.int64)), "tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            emu._serve_control(20)
    th = threading.Thread(target=serve)
    th.start()
    try:
        c = ControlClient(emu.control_endpoint, timeout_ms=2000, retries=1)
        regs = c.configure(items_per_message=256, rate_factor=0.5)
        assert regs["items_per_message"] == 256 and regs["rate_factor"] == 0.5
        rep = c.request("configure", set={"items_per_message": -4})
        assert rep["ok"] is False and "got -4" in rep["error"]
        rep = c.request("configure", set={"payload_kind": 2, "sample_dtype": 2})    # this source is tags
        assert rep["ok"] is False and "this source" in rep["error"]
        assert c.start()["running"] == 1
        with pytest.raises(ConfigError, match="running; stop it first"):
            c.configure(items_per_message=512)
        assert c.stop()["running"] == 0
        assert c.status()["items_per_message"] == 256
        assert c.request("read", names=["items_per_message"])["registers"] == {"items_per_message": 256}
        c.close()
    finally:
        stop.set()
        th.join()
        emu.close()


def test_lazy_pirate_retries_then_times_out():
    ctx = zmq.Context.instance()
    srv = ctx.socket(zmq.ROUTER)            # a board that loses the first request (no reply)
    srv.linger = 0
    ep = bind_socket(srv, "tcp://127.0.0.1:*")
    regs = RegisterFile()
    got = []

    def flaky():
        got.append(srv.recv_multipart())          # swallowed
        ident, empty, body = srv.recv_multipart()  # the retry, from a fresh REQ socket
        got.append(body)
        srv.send_multipart([ident, empty, json.dumps(handle_request(regs, body)).encode()])
    th = threading.Thread(target=flaky)
    th.start()
    c = ControlClient(ep, timeout_ms=300, retries=3)
    assert c.status()["running"] == 0
    th.join()
    assert c.attempts == 2 and len(got) == 2 and got[0][-1] == got[1]
    c.close()
    srv.close()
    # nobody there at all: BoardTimeout after retries + 1 attempts
    c = ControlClient(ep, timeout_ms=100, retries=2)
    with pytest.raises(BoardTimeout, match="after 3 attempts"):
        c.status()
    assert c.attempts == 3
    c.close()


def test_loopback_rule_and_curve():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("ipc:///tmp/x") and is_loopback("tcp://[::1]:5")
    assert is_loopback("tcp://localhost:1") and not is_loopback("tcp://0.0.0.0:5555")
    assert not is_loopback("tcp://192.168.1.4:5555")
    with pytest.raises(ConfigError, match="endpoint"):
        is_loopback("127.0.0.1:5555")
    ctx = zmq.Context()
    s = ctx.socket(zmq.REP)
    with pytest.raises(ConfigError, match="refusing to bind tcp://0.0.0.0:0: not a loopback endpoint and no CURVE"):
        bind_socket(s, "tcp://0.0.0.0:0")
    s.close()
    ctx.term()


def test_curve_control_channel(tmp_path):
    """Non-loopback bind with CURVE keys: an authorised client talks, a client without keys gets nothing."""
    keys = make_curve_keys(tmp_path / "keys")
    ctx = zmq.Context()
    emu = BoardEmulator(ArraySource(np.arange(10, dtype=np.int64)), "tcp://127.0.0.1:*", "tcp://0.0.0.0:*",
                        curve_dir=keys, context=ctx)
    port = emu.control_endpoint.rsplit(":", 1)[1]
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            emu._serve_control(20)
    th = threading.Thread(target=serve)
    th.start()
    try:
        c = ControlClient(f"tcp://127.0.0.1:{port}", timeout_ms=3000, retries=0, curve_dir=keys, context=ctx)
        assert c.status()["running"] == 0
        c.close()
        bad = ControlClient(f"tcp://127.0.0.1:{port}", timeout_ms=300, retries=0, context=ctx)
        with pytest.raises(BoardTimeout):
            bad.status()
        bad.close()
    finally:
        stop.set()
        th.join()
        emu.close()
        from modem.board.control import close_auth
        close_auth(ctx)
        ctx.term()


def test_readme_tables_match_the_definition():
    """fpga/README.md's header and register tables say what protocol.toml says."""
    text = (FPGA / "README.md").read_text()
    rows = [[c.strip().strip("`") for c in ln.strip().strip("|").split("|")] for ln in text.splitlines()
            if ln.startswith("| `")]
    header = {r[0]: (r[1], int(r[2])) for r in rows if len(r) == 4}
    assert header == {n: (t, o) for n, t, o in P.HEADER_FIELDS}
    regs = {r[0]: (int(r[1], 16), r[2], r[3]) for r in rows if len(r) == 6}
    assert regs == {r.name: (r.address, r.access, r.type) for r in P.REGISTERS.values()}
    assert f"0x{P.MAGIC:08X}" in text
