# SPDX-License-Identifier: Apache-2.0
"""``modem board emulate`` -> ``modem receive`` through the production CLI (ipc endpoints in tmp),
``modem board ctl`` error replies, ``modem board keys``, loopback refusal."""
import json
import threading

from modem.cli import main


def test_emulate_then_receive_cli(tmp_path, capsys):
    data, ctl = f"ipc://{tmp_path}/data", f"ipc://{tmp_path}/ctl"
    rc = {}

    def emulate():
        rc["emu"] = main(["board", "emulate", "--source", "sim", "--frames", "14", "--rate", "0", "--endpoint", data,
                          "--control", ctl, "--wait-start", "--drop", "20", "--duplicate", "5", "--json"])
    th = threading.Thread(target=emulate)
    th.start()
    # a bad control request gets an error reply (exit 2) and leaves the board waiting
    assert main(["board", "ctl", "--control", ctl, "configure", "items_per_message=0"]) == 2
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] is False and "items_per_message" in rep["error"] and "got 0" in rep["error"]
    assert main(["board", "ctl", "--control", ctl, "configure", "items_per_message=3000"]) == 0
    capsys.readouterr()
    # the receiver reads the link parameters from the board's status, connects, then starts it
    out = tmp_path / "rx"
    assert main(["receive", "--board", data, "--control", ctl, "--out", str(out), "--until-eos", "--publish", "none",
                 "--json", "--quiet"]) == 0
    th.join(60)
    assert rc["emu"] == 0
    lines = capsys.readouterr().out.strip().splitlines()
    emu, st = json.loads(lines[0]), json.loads(lines[-1])
    assert emu["registers"]["items_per_message"] == 3000
    assert [f[0] for f in emu["faults"]] == ["duplicate", "drop"]
    assert (st["lost_messages"], st["gaps"], st["duplicates"], st["resyncs"], st["eos"]) == (1, 1, 1, 1, 1)
    assert st["frames_valid"] >= 5 and st["frames_bad"] == 0 and st["kind"] == "timetags"
    assert (out / "frames.bin").stat().st_size == st["frames_valid"] * 1115
    ev = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in ev] == ["seq_gap", "eos"] and ev[0]["first_seq"] == 20
    assert json.loads((out / "stats.json").read_text())["frames_valid"] == st["frames_valid"]


def test_cli_refuses_non_loopback_without_keys_and_makes_keys(tmp_path, capsys):
    assert main(["board", "emulate", "--endpoint", "tcp://0.0.0.0:5999", "--frames", "1"]) == 2
    assert "not a loopback endpoint and no CURVE keys" in capsys.readouterr().err
    assert main(["receive", "--board", "tcp://127.0.0.1:5998", "--publish", "tcp://0.0.0.0:5997",
                 "--out", str(tmp_path)]) == 2
    assert "refusing to bind tcp://0.0.0.0:5997" in capsys.readouterr().err
    assert main(["receive", "--board", "tcp://127.0.0.1:5998", "--param", "chain=nope"]) == 2
    assert "chain must be 'scppm' or 'dpsk', got 'nope'" in capsys.readouterr().err
    assert main(["board", "keys", str(tmp_path / "k")]) == 0
    assert (tmp_path / "k" / "server.key_secret").exists() and (tmp_path / "k" / "authorized" / "client.key").exists()
