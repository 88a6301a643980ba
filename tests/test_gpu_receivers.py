# SPDX-License-Identifier: Apache-2.0
"""The FEC decoders of every entry point on the GPU kernels: replay (``modem decode``), the
real-time receiver, the sample loopback and the simulations.

One test body per entry point, parametrized over the backend that runs the FEC decoder:

* ``cpu``: the Numba implementation (launcher None), the reference;
* ``emulated``: the CUDA kernels compiled as host C++ (``HostEmulationLauncher``), through the same
  wrappers, index arithmetic and host<->device hand-over as on a GPU;
* ``gpu``: the CuPy launcher (skipped cleanly without CuPy or a device).

Each non-CPU run must give the CPU's report: the same frames (octets, CRC/FECF flags, iteration
counts), packets, counts and error statistics; only timings and the backend's name differ.
"""
import argparse
import shutil

import numpy as np
import pytest

from modem import backend
from modem.errors import BackendUnavailable
from modem.offline import decode_capture, receiver_for

CAPTURES = ["captures/snspd16_pass.h5", "captures/deepspace128_pass.h5", "captures/dpsk_burst_fading.sigmf-meta"]
#: report keys that depend on the run, not on the decoded data
VOLATILE = ("throughput", "backend", "file", "plots")


def _launcher(name):
    if name == "cpu":
        return None
    if name == "emulated":
        if shutil.which("g++") is None:
            pytest.skip("host emulation of the kernels needs g++")
        from modem.gpu.launch import HostEmulationLauncher  # noqa: PLC0415
        return HostEmulationLauncher()
    if not backend.gpu_available():
        pytest.skip(f"GPU backend unavailable: {backend.unavailable_reason()}")
    return backend.fec_launcher("gpu")


@pytest.fixture(params=["emulated", pytest.param("gpu", marks=pytest.mark.gpu)])
def kernels(request):
    """(name, launcher) of a backend that runs the FEC decoders as kernels."""
    return request.param, _launcher(request.param)


def _stable(rep: dict) -> dict:
    return {k: v for k, v in rep.items() if k not in VOLATILE}


@pytest.fixture(scope="module")
def cpu_reports():
    return {c: decode_capture(c, backend="cpu") for c in CAPTURES}


@pytest.mark.parametrize("capture", CAPTURES)
def test_decode_capture_on_kernels_gives_the_cpu_report(kernels, capture, cpu_reports):
    name, launcher = kernels
    ref = cpu_reports[capture]
    assert ref["backend"]["backend"] == "cpu" and ref["frames"]["good"] > 0
    rep = decode_capture(capture, launcher=launcher)
    assert rep["backend"]["backend"] == name
    assert rep["backend"]["stages"] == {"fec": name, "front_end_sync_framing": "cpu"}
    if "dpsk" not in capture:          # SCPPM codewords held for calls of up to 1024 (the CPU: per chunk)
        assert rep["backend"]["decode_batch"] > 1 and ref["backend"]["decode_batch"] == 1
    assert _stable(rep) == _stable(ref)
    if "manifest" in ref:
        assert rep["manifest"] == ref["manifest"]


def test_decode_capture_frames_files_equal(kernels, tmp_path):
    """The output files (good frames, per-frame CSV with CRC/FECF status and iterations) too."""
    _, launcher = kernels
    capture = "captures/deepspace128_pass.h5"        # has frames flagged bad: their rows must match too
    decode_capture(capture, out_dir=tmp_path / "cpu", backend="cpu")
    decode_capture(capture, out_dir=tmp_path / "k", launcher=launcher)
    for f in ("frames.bin", "frames.csv", "packets.bin"):
        assert (tmp_path / "k" / f).read_bytes() == (tmp_path / "cpu" / f).read_bytes(), f


def test_backend_argument_cpu_and_env(monkeypatch):
    """``backend`` and MODEM_BACKEND pick the FEC backend; cpu never touches the kernels."""
    monkeypatch.setenv("MODEM_BACKEND", "cpu")
    rep = decode_capture(CAPTURES[0])
    assert rep["backend"]["backend"] == "cpu" and rep["backend"]["stages"]["fec"] == "cpu"
    if not backend.gpu_available():
        with pytest.raises(BackendUnavailable, match="^MODEM_BACKEND=gpu requested but"):
            decode_capture(CAPTURES[0], backend="gpu")


def test_receivers_carry_their_launcher(kernels):
    """Every stream receiver takes ``launcher`` and exposes it (the real-time receiver reports it)."""
    name, launcher = kernels
    from modem.board.realtime import RealtimeReceiver  # noqa: PLC0415
    meta = {"chain": "scppm", "M": 16, "rate": "1/2", "slot_width_ps": 1000.0, "ns": 2.0, "nb": 0.01,
            "frame_len": 1115, "scid": 1}
    for m in (meta, {"chain": "dpsk", "frame_len": 256, "scid": 1, "n_samples": 5},
              {"chain": "scppm-apd", "frame_len": 1115, "scid": 1, "ns": 8.0, "nb": 0.1}):
        rx = receiver_for(m, launcher)
        assert rx.launcher is launcher and backend.launcher_name(rx.launcher) == name
    rt = RealtimeReceiver(board="tcp://127.0.0.1:5", decoder_factory=lambda: receiver_for(meta, launcher))
    try:
        assert rt.backend == name
    finally:
        rt.stop()


def test_options_the_kernels_lack_are_refused_with_one_line():
    launcher = _launcher("emulated")
    from modem.fec.scppm import SCPPMCode, SCPPMDecoder  # noqa: PLC0415
    with pytest.raises(BackendUnavailable, match="exact log-MAP only; max_log=True decodes on the CPU"):
        SCPPMDecoder(SCPPMCode(16, "1/2"), max_log=True, launcher=launcher)
    from modem.sample_receiver import DPSKLink, DPSKSampleReceiver  # noqa: PLC0415
    link = DPSKLink(frame_len=256, scid=1)
    with pytest.raises(BackendUnavailable, match="got algorithm='sum-product'"):
        DPSKSampleReceiver(link, decode_options={"algorithm": "sum-product"}, launcher=launcher)


@pytest.mark.parametrize("chain,params", [
    ("scppm-apd", {"ns": 8.0, "nb": 0.1, "thermal_sigma": 20.0}),
    ("dpsk", {"ppb": 6.0}),
])
def test_sample_loopback_on_kernels(kernels, chain, params):
    from modem.sample_loopback import loopback  # noqa: PLC0415
    name, launcher = kernels
    ref = loopback(chain, params, n_frames=6, seed=3)
    got = loopback(chain, params, n_frames=6, seed=3, launcher=launcher)
    assert ref["backend"] == "cpu" and got["backend"] == name
    assert ref["frames_valid"] > 0
    keys = ("frames_valid", "frames_flagged_bad", "frames_missing", "undetected_errors", "codewords",
            "codewords_failed", "frame_sync_restarts", "samples")
    assert {k: got[k] for k in keys} == {k: ref[k] for k in keys}


def _sim_args(module, argv):
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)


_SIM_KEYS = ("frames", "frame_errors", "info_bits", "frames_flagged_bad", "undetected_errors",
             "iterations_mean", "params")


@pytest.mark.parametrize("chain,argv", [
    ("scppm", ["--order", "16", "--ns", "1.42", "--nb", "0.1", "--frames", "24", "--batch", "8"]),
    ("scppm", ["--order", "64", "--ns", "1.7", "--nb", "0.1", "--frames", "8", "--batch", "8",
               "--interleaver-rows", "8", "--interleaver-shift", "315"]),
    ("dpsk", ["--frame", "short", "--ppb", "1.3", "--frames", "24", "--batch", "8"]),
])
def test_simulation_on_kernels(kernels, monkeypatch, chain, argv):
    """``modem simulate`` with the decoder on the kernels counts the same errors as on the CPU
    (near threshold: some frames fail, so failing decodes are compared too)."""
    from modem.sim import dpsk, scppm  # noqa: PLC0415
    module = {"scppm": scppm, "dpsk": dpsk}[chain]
    name, launcher = kernels
    monkeypatch.setenv("MODEM_BACKEND", "cpu")
    ref = module.run(_sim_args(module, argv))
    monkeypatch.setattr(backend, "fec_launcher", lambda b=None: launcher)
    got = module.run(_sim_args(module, argv))
    assert ref["backend"] == "cpu" and got["backend"] == name and got["backend_info"]["backend"] == name
    assert ref["frame_errors"] > 0 and ref["frame_errors"] < ref["frames"]     # the comparison covers both
    assert {k: got[k] for k in _SIM_KEYS} == {k: ref[k] for k in _SIM_KEYS}
    if chain == "dpsk" or name == "emulated":
        assert got["bit_errors"] == ref["bit_errors"]
    else:   # SCPPM on a GPU: a failed codeword's bits on an exact tie (a symbol without photons) may
        # round the other way (kernels/README.md); flags, iterations and decoded codewords may not
        assert abs(got["bit_errors"] - ref["bit_errors"]) <= 0.01 * ref["bit_errors"]


def test_simulation_max_log_stays_on_cpu_under_auto(monkeypatch):
    """max-log-MAP has no kernel: under ``auto`` it runs on the CPU (and says so), under ``gpu``
    it is refused with one line, never silently run elsewhere."""
    from modem.sim import scppm  # noqa: PLC0415
    launcher = _launcher("emulated")
    monkeypatch.setattr(backend, "fec_launcher", lambda b=None: launcher)
    argv = ["--max-log", "--frames", "4", "--batch", "4", "--ns", "3.0"]
    monkeypatch.setenv("MODEM_BACKEND", "auto")
    assert scppm.run(_sim_args(scppm, argv))["backend"] == "cpu"
    monkeypatch.setenv("MODEM_BACKEND", "gpu")
    with pytest.raises(BackendUnavailable, match="exact log-MAP only"):
        scppm.run(_sim_args(scppm, argv))


def test_results_to_host_keeps_fields():
    from modem.fec.scppm.decoder import DecodeResult  # noqa: PLC0415
    r = DecodeResult(u_hat=np.zeros((2, 3), np.uint8), crc_ok=np.array([True, False]), iterations=np.array([1, 2]))
    h = backend.results_to_host(r)
    assert isinstance(h, DecodeResult) and list(h.valid) == [True, False] and h.u_hat.shape == (2, 3)
