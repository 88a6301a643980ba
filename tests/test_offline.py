# SPDX-License-Identifier: Apache-2.0
"""Offline replay (modem.offline): chunk-size invariance, the report and output files, Dask batch
decoding equal to one-by-one decoding, the capture generator round trip, receiver_for."""
import hashlib
import json
import os

import numpy as np
import pytest

from modem import backend
from modem.cli import main
from modem.errors import ConfigError
from modem.framing.packets import parse_space_packet
from modem.offline import decode_capture, decode_many, receiver_for

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURES = os.path.join(os.path.dirname(HERE), "captures")
DEFAULT = os.path.join(CAPTURES, "snspd16_pass.h5")
VOLATILE = ("throughput", "backend", "file", "plots")


def _stable(rep: dict) -> dict:
    return {k: v for k, v in rep.items() if k not in VOLATILE}


@pytest.fixture(scope="module")
def default_report():
    return decode_capture(DEFAULT)


@pytest.mark.parametrize("chunk", [3000, 77777, 10 ** 7])
def test_decode_is_chunk_size_invariant(default_report, chunk):
    rep = decode_capture(DEFAULT, chunk=chunk)
    assert _stable(rep) == _stable(default_report)


def test_report_contents(default_report):
    r = default_report
    assert r["format"] == "hdf5" and r["kind"] == "timetags" and r["chain"] == "scppm"
    assert r["frames"]["good"] >= 20 and r["frames"]["bad"] == 0
    assert r["quality"]["codewords"] > 0 and r["quality"]["codewords_crc_failed"] == 0
    assert 1 <= r["quality"]["iterations_mean"] <= r["quality"]["iterations_max"] <= 16
    assert [e["kind"] for e in r["sync_events"]] == ["acquired", "loss_of_signal", "acquired"]   # the cloud
    los = r["gaps"]["loss_of_signal"][0]
    assert 0.9e9 < los["t_end_ps"] - los["t_start_ps"] < 1.4e9                                  # ~1 ms
    ph = r["photons"]
    assert ph["tags"] == sum(ph["per_channel"].values()) and len(ph["per_channel"]) == 4
    hist = np.array(ph["slot_histogram"])
    assert hist.size == 20 and hist[16:].max() < 0.2 * hist[:16].min()     # guard slots: background only
    assert r["throughput"]["wall_s"] > 0 and r["throughput"]["decoded_info_bits"] == r["frames"]["good"] * 8920
    assert r["backend"]["backend"] == "cpu"
    assert r["reader"] == {"records": ph["records"], "dropped_non_monotonic": 0, "photons": ph["tags"]}
    re = r["reencode"]                                  # channel measured on the re-encoded codewords
    assert re["codewords"] == r["quality"]["codewords"] and re["symbols"] == re["codewords"] * 3796
    # the 20 ns dead time of each pixel swallows part of the 2.4 detected photons per pulse
    assert 1.0 < re["ns_estimate"] < r["meta"]["ns"] and 0.5 * r["meta"]["nb"] < re["nb_estimate"] < r["meta"]["nb"]
    assert 0.05 < re["hard_symbol_error_rate"] < 0.5 and re["empty_symbol_rate"] < re["hard_symbol_error_rate"]
    json.dumps(r)                                                             # JSON-able as is


def test_report_carries_the_format_readers_counters():
    """The PTU reader's overflow / marker / sync / time-jump counters reach the report (a tagger's
    own losses must not stay inside the reader)."""
    r = decode_capture(os.path.join(CAPTURES, "snspd16_pass.ptu"))
    rd = r["reader"]
    assert {"overflows", "markers", "syncs", "time_jumps", "records", "photons"} <= set(rd)
    assert rd["photons"] == r["photons"]["tags"] and rd["records"] >= rd["photons"] + rd["overflows"]
    assert rd["overflows"] > 0 and rd["syncs"] == 0 and rd["time_jumps"] == 0


def test_output_files_and_plots(tmp_path, default_report):
    rep = decode_capture(DEFAULT, out_dir=tmp_path, plots=True)
    names = sorted(os.listdir(tmp_path))
    assert names == ["frame_errors.png", "frames.bin", "frames.csv", "packets.bin", "report.json",
                     "slot_histogram.png"]
    for png in ("frame_errors.png", "slot_histogram.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (tmp_path / "frames.csv").read_text().splitlines()
    assert len(rows) == 1 + rep["frames"]["total"]
    assert (tmp_path / "frames.bin").stat().st_size == 1115 * rep["frames"]["good"]
    assert hashlib.sha256((tmp_path / "frames.bin").read_bytes()).hexdigest() == rep["frames"]["frames_sha256"]
    blob, pos, n = (tmp_path / "packets.bin").read_bytes(), 0, 0
    while pos < len(blob):                                                  # self-delimiting packets
        L = 7 + int.from_bytes(blob[pos + 4:pos + 6], "big")
        assert parse_space_packet(blob[pos:pos + L]).header.apid in range(0x100, 0x105)
        pos, n = pos + L, n + 1
    assert n == rep["packets"]["count"]
    assert hashlib.sha256(blob).hexdigest() == rep["packets"]["payload_sha256"]
    assert json.loads((tmp_path / "report.json").read_text())["frames"] == rep["frames"]


def test_dask_batch_equals_one_by_one(tmp_path):
    paths = [os.path.join(CAPTURES, f) for f in ("snspd16_pass.ptu", "deepspace128_pass.h5",
                                                  "dpsk_burst_fading.sigmf-meta")]
    paths.append(str(tmp_path / "missing.h5"))                 # an error is a result of its own task
    batch = decode_many(paths)
    one = [decode_capture(p) for p in paths[:3]]
    assert [_stable(b) for b in batch[:3]] == [_stable(o) for o in one]
    assert [b["file"] for b in batch] == paths
    assert batch[3] == {"file": paths[3], "error": f"{paths[3]}: no such file"}


def test_dask_batch_on_an_existing_scheduler():
    from dask.distributed import LocalCluster
    path = os.path.join(CAPTURES, "deepspace128_pass.h5")
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        rep, = decode_many([path], scheduler=cluster.scheduler_address)
    assert _stable(rep) == _stable(decode_capture(path))


def test_cli_batch_with_output_folders(tmp_path, capsys):
    a = os.path.join(CAPTURES, "snspd16_pass.h5")
    b = os.path.join(CAPTURES, "snspd16_pass.ptu")
    assert main(["decode", a, b, "--out", str(tmp_path), "--json"]) == 0
    reps = json.loads(capsys.readouterr().out)
    assert [r["format"] for r in reps] == ["hdf5", "ptu-t2"]
    assert reps[0]["packets"]["payload_sha256"] == reps[1]["packets"]["payload_sha256"]   # same tags
    assert sorted(os.listdir(tmp_path)) == ["snspd16_pass_h5", "snspd16_pass_ptu"]
    assert (tmp_path / "snspd16_pass_ptu" / "frames.bin").read_bytes() == \
        (tmp_path / "snspd16_pass_h5" / "frames.bin").read_bytes()
    assert main(["decode", a, str(tmp_path / "nope.ptu"), "--no-progress"]) == 2          # one bad pass
    out = capsys.readouterr().out
    assert "nope.ptu: error: " in out and "payload sha256" in out


def test_capture_generate_refuses_a_bad_output_name_before_writing(tmp_path, capsys, monkeypatch):
    """A bad output name among several is refused before the pass is generated or any file written."""
    import modem.io.generate as gen
    monkeypatch.setattr(gen, "generate_scppm_pass", lambda spec: pytest.fail("generated before the check"))
    h5 = tmp_path / "g.h5"
    assert main(["capture", "generate", str(h5), str(tmp_path / "g.txt")]) == 2
    assert "output must end in .h5, .hdf5 or .ptu, got" in capsys.readouterr().err and not h5.exists()


def test_capture_generate_round_trip(tmp_path, capsys):
    h5, ptu = str(tmp_path / "g.h5"), str(tmp_path / "g.ptu")
    assert main(["capture", "generate", h5, ptu, "--packets", "12", "--cloud-ms", "0", "--seed", "9"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert entry["files"] == ["g.h5", "g.ptu"] and entry["packets"] == 12 and entry["cloud_ps"] is None
    for p in (h5, ptu):
        rep = decode_capture(p)
        assert rep["packets"]["count"] == 12
        assert rep["packets"]["payload_sha256"] == entry["payload_sha256"]


def test_interleaved_repeated_pass_through_a_cloud_round_trip(tmp_path, capsys):
    """A pass recorded with the SCPPM channel interleaver (N = 2, B = 1890) and symbol repetition 2,
    with a 1 ms cloud: the capture names them in its link parameters and decodes, chunked, to its
    whole payload (the codewords the interleaver spreads over the cloud are covered by idle frames)."""
    h5 = str(tmp_path / "il.h5")
    assert main(["capture", "generate", h5, "--interleaver-rows", "2", "--interleaver-shift", "1890",
                 "--repetition", "2", "--ns", "1.8", "--packets", "16", "--seed", "5"]) == 0
    entry = json.loads(capsys.readouterr().out)
    link = entry["link"]
    assert (link["interleaver_rows"], link["interleaver_shift"], link["repetition"]) == (2, 1890, 2)
    assert entry["cloud_ps"] is not None
    rep = decode_capture(h5, chunk=20000)
    assert [e["kind"] for e in rep["sync_events"]] == ["acquired", "loss_of_signal", "acquired"]
    assert rep["frames"]["bad"] == 0 and rep["frames"]["good"] > 16
    assert rep["packets"]["count"] == 16 and rep["packets"]["payload_sha256"] == entry["payload_sha256"]


@pytest.mark.parametrize("preset,packets", [("apd16", 2), ("dpsk_burst", 4)])
def test_sample_capture_generate_round_trip(tmp_path, capsys, preset, packets):
    stem = str(tmp_path / preset)
    assert main(["capture", "generate", stem, "--preset", preset, "--packets", str(packets)]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert entry["kind"] == "samples" and entry["packets"] == packets
    rep = decode_capture(stem + ".sigmf-meta")
    assert rep["kind"] == "samples" and rep["samples"]["count"] == entry["samples"]
    assert rep["packets"]["payload_sha256"] == entry["payload_sha256"]


@pytest.mark.skipif(backend.gpu_available(), reason="this machine has a GPU")
def test_gpu_request_without_gpu_is_refused_not_run_on_cpu(monkeypatch, capsys):
    monkeypatch.setenv("MODEM_BACKEND", "gpu")
    assert main(["decode", DEFAULT]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("modem: error: MODEM_BACKEND=gpu requested but"), err


def test_receiver_for():
    rx = receiver_for({"chain": "scppm", "M": 16, "rate": "1/2", "slot_width_ps": 1000.0, "ns": 2.0, "nb": 0.01,
                       "frame_len": 1115, "scid": 1, "clock_acq_max_guard_ratio": 0.7})
    assert rx.clock.cfg.acq_max_guard_ratio == 0.7 and rx.code.M == 16
    rx.push(np.zeros(0, np.int64))
    assert rx.flush() == []
    with pytest.raises(ConfigError, match="chain must be"):
        receiver_for({"chain": "ook"})
    from modem.sample_receiver import DPSKSampleReceiver
    assert isinstance(receiver_for({"chain": "dpsk", "frame_len": 256, "scid": 1, "n_samples": 5}),
                      DPSKSampleReceiver)


@pytest.mark.slow
def test_replay_memory_benchmark_smoke(tmp_path):
    """bench/bench_replay_memory.py runs end to end on a small scale (it measures, never asserts)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "bench_replay_memory", os.path.join(os.path.dirname(HERE), "bench", "bench_replay_memory.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--scale", "2", "--chunk", "65536", "--out", str(tmp_path)]) == 0
    doc = json.loads(next(tmp_path.iterdir()).read_text())
    big = [r for r in doc["results"] if r["capture"] == "x2"]
    assert len(big) == 2 and all(r["payload_ok"] for r in big)


@pytest.mark.parametrize("repetition, unit", [(1, "symbol"), (2, "symbol")])
def test_reencode_statistics_count_what_the_slots_hold(repetition, unit):
    """The replay's channel statistics from the CRC-valid codewords (counted per transmitted
    symbol) equal the slot-by-slot count over the re-modulated codewords: every slot's counts go to
    signal (the pulsed slot) or background (the other data slots and the guard slots), a symbol is
    wrong when its largest count is not at its pulse or it has no count."""
    from types import SimpleNamespace

    from modem.fec.scppm import SCPPMCode, SCPPMTransmitter
    from modem.framing.tm import TMFrameSpec
    from modem.offline import _time_tag_receiver_class
    code = SCPPMCode(M=16, rate="1/2", repetition=repetition, repeat_unit=unit)
    rx = _time_tag_receiver_class()(code, TMFrameSpec(frame_len=1115, scid=1), 1000.0, 2.0, 0.05)
    rng = np.random.default_rng(5)
    u = rng.integers(0, 2, (5, code.k), dtype=np.uint8)
    x = SCPPMTransmitter(code).modulate(u).astype(bool)
    y = (rng.poisson(0.05, x.shape) + x * rng.poisson(2.0, x.shape)).astype(np.uint16)
    crc_ok = np.array([True, False, True, True, True])
    rx._measure(y, SimpleNamespace(crc_ok=crc_ok, u_hat=u))
    P = code.slots_per_symbol
    xs, ys = x[crc_ok].reshape(4, -1, P)[..., :16], y[crc_ok].reshape(4, -1, P)[..., :16].astype(np.int64)
    empty = ys.max(-1) == 0
    want = {"codewords": 4, "symbols": xs.shape[0] * xs.shape[1], "pulses": int(x[crc_ok].sum()),
            "symbol_errors": int(((ys.argmax(-1) != xs.argmax(-1)) | empty).sum()), "empty_symbols": int(empty.sum()),
            "signal_counts": int(y[crc_ok][x[crc_ok]].sum()), "background_counts": int(y[crc_ok][~x[crc_ok]].sum()),
            "empty_slots": int((~x[crc_ok]).sum())}
    assert rx.reencode == want
    assert 0 < want["symbol_errors"] < want["symbols"] and want["empty_symbols"] > 0
