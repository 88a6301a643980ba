# SPDX-License-Identifier: Apache-2.0
"""Review of the end-to-end simulations (modem.sim.scppm, modem.sim.dpsk), the sample loopback
(modem.sample_loopback) and the capture generator (modem.io.generate): each test pins a bug found
in review (a generated pass that does not decode to its payload, a channel that is not what its
parameters say, bad values that give a traceback, a silent empty capture or a message naming another
value)."""
import os

import numpy as np
import pytest

from modem.cli import main
from modem.io import generate as G

# --- capture generator -----------------------------------------------------------------------------

def test_interleaved_scppm_pass_with_a_cloud_decodes_to_its_payload(tmp_path):
    """The idle frames around a cloud must also cover the codewords a channel interleaver spreads
    into it from before: with N=4, B=1890 (delay 6 codewords) the data codewords just before the
    cloud lost symbols in it and half the payload was missing."""
    from modem.offline import decode_capture
    spec = G.SCPPMPassSpec(n_packets=8, packet_len=(60, 300), cloud_ms=0.3, interleaver_rows=4,
                           interleaver_shift=1890, seed=5)
    g = G.generate_scppm_pass(spec)
    path = tmp_path / "il.h5"
    G.write_pass(g, path)
    rep = decode_capture(str(path))
    assert rep["packets"]["count"] == len(g.packets)
    assert rep["packets"]["payload_sha256"] == g.payload_sha256


@pytest.mark.parametrize("argv,named", [
    (["--slot-ps", "0"], "slot_width_ps=0"),
    (["--slot-ps", "nan"], "slot_width_ps=nan"),
    (["--seed", "-1"], "seed=-1"),
    (["--packets", "0"], "n_packets=0"),
    (["--cloud-ms", "nan"], "cloud_ms=nan"),
])
def test_capture_generate_scppm_bad_values_give_one_line(tmp_path, capsys, argv, named):
    out = tmp_path / "x.h5"
    assert main(["capture", "generate", str(out), "--packets", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modem: error:") and named in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("argv,named", [
    (["--packets", "0"], "n_packets=0"),
    (["--packets", "-3"], "n_packets=-3"),
    (["--scale", "-1"], "n_packets=-12"),
    (["--seed", "-1"], "seed=-1"),
])
def test_capture_generate_dpsk_bad_values_give_one_line(tmp_path, capsys, argv, named):
    """A DPSK preset with no payload (or a negative seed) wrote an empty capture / raised a traceback."""
    stem = tmp_path / "y"
    assert main(["capture", "generate", str(stem), "--preset", "dpsk_burst", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modem: error:") and named in err and len(err.strip().splitlines()) == 1
    assert not os.listdir(tmp_path)


# --- sample loopback ---------------------------------------------------------------------------------

def test_samples_negative_seed_gives_one_line(capsys):
    assert main(["samples", "dpsk", "--frames", "2", "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modem: error:") and "seed=-1" in err and len(err.strip().splitlines()) == 1


# --- SCPPM simulation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv,named", [
    (["--ns", "-1", "--efficiency", "0.5"], "ns=-1.0"),
    (["--nb", "-1", "--efficiency", "0.5"], "nb=-1.0"),
])
def test_scppm_simulation_names_the_incident_value(capsys, argv, named):
    """With a detector the error named the detected value (efficiency x ns), not the --ns given."""
    assert main(["simulate", "scppm", "--frames", "1", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert named in err and len(err.strip().splitlines()) == 1


def _scppm_args(**kw):
    import argparse

    from modem.sim import scppm
    p = argparse.ArgumentParser()
    scppm.add_arguments(p)
    a = p.parse_args([])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def test_scppm_simulation_dead_time_runs_on_across_codewords_and_batches(monkeypatch):
    """The SNSPD sees one slot stream: a detection in a codeword's last slots blinds the next
    codeword's first ones, also across decoder batches (each codeword row started with a ready
    detector, so a dead time longer than the CSM left data slots unblocked)."""
    from modem.sim import scppm
    seen = []

    class Recording(scppm.SCPPMReceiver):
        def receive(self, counts):
            seen.append(np.array(counts))
            return super().receive(counts)

    monkeypatch.setattr(scppm, "SCPPMReceiver", Recording)
    d = 400                                               # > the 320 CSM slots of 16-PPM
    rep = scppm.run(_scppm_args(order=16, frames=3, batch=2, ns=2.0, nb=0.05, efficiency=0.9, dead_time=d,
                                max_iter=1))
    assert rep["frames"] == 3 and [c.shape[0] for c in seen] == [2, 1]
    y = np.concatenate([c.reshape(-1) for c in seen])
    assert set(np.unique(y)) <= {0, 1}
    hits = np.flatnonzero(y)
    assert hits.size > 100 and np.diff(hits).min() > d


@pytest.mark.parametrize("name", ["y", "y.sigmf-meta"])
def test_capture_generate_sample_entry_names_the_files_written(tmp_path, capsys, name):
    """The manifest entry of a SigMF recording listed 'y.sigmfdata' for the data file y.sigmf-data."""
    import json
    assert main(["capture", "generate", str(tmp_path / name), "--preset", "dpsk_burst", "--packets", "2"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert sorted(entry["files"]) == sorted(os.listdir(tmp_path)) == ["y.sigmf-data", "y.sigmf-meta"]


@pytest.mark.parametrize("kw,named", [({"scint_index": -0.1}, "scint_index=-0.1"),
                                      ({"scint_index": float("nan")}, "scint_index=nan"),
                                      ({"lead_slots": -1}, "lead_slots=-1")])
def test_dpsk_pass_spec_refuses_bad_channel_values(kw, named):
    """A negative (or NaN) scintillation index generated a pass without fading, silently."""
    from modem.errors import ConfigError
    with pytest.raises(ConfigError, match=named):
        G.DPSKPassSpec(**kw)


# --- checks that found the code right (kept as guards) ------------------------------------------------

def test_scppm_simulation_counts_every_frame_once_through_the_channel_interleaver():
    """N=4, B=945 (delay 3 codewords): every --frames codeword compared with its own decode whatever
    --batch (the flush at the end closes the last ones); none lost, none counted twice."""
    from modem.sim import scppm
    for batch in (1, 2, 5):
        r = scppm.run(_scppm_args(order=16, frames=5, batch=batch, ns=3.0, nb=0.05, max_iter=6, interleaver_rows=4,
                                  interleaver_shift=945))
        assert (r["frames"], r["info_bits"]) == (5, 5 * 7526)
        assert r["frame_errors"] == r["undetected_errors"] == r["frames_flagged_bad"] == 0


@pytest.mark.parametrize("kw", [dict(channel="awgn", esn0=3.0), dict(ppb=2.0),
                                dict(ppb=3.0, nf=4.0, interleaver_ms=0.05, frames_per_block=2)])
def test_dpsk_simulation_raw_ber_matches_theory(kw):
    """Raw (hard-decision) BER against exp(-Eb/N0)/2 within 4 standard deviations, full chain and
    sampled interleaver blocks."""
    from modem.channel.optical import dpsk_ber
    from modem.sim import dpsk
    a = dpsk.default_args(frames=6, batch=6, max_iter=1, seed=11, **kw)
    r = dpsk.run(a)
    ebn0_db = a.esn0 if a.channel == "awgn" else r["params"]["ebn0_db"]
    p = float(dpsk_ber(10 ** (ebn0_db / 10)))
    n = r["raw_bits"]
    assert n > 6 * 16000
    assert abs(r["raw_ber"] - p) < 4 * np.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("preset", ["apd16", "dpsk_burst"])
def test_capture_generate_sample_preset_refuses_time_tag_options(tmp_path, capsys, preset):
    """--ns (or any time-tag option) with a sample preset was ignored silently: the recording was
    written with the preset's ns while the user asked for another."""
    assert main(["capture", "generate", str(tmp_path / "y"), "--preset", preset, "--packets", "2",
                 "--ns", "2", "--efficiency", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modem: error:") and "--ns" in err and "--efficiency" in err
    assert not os.listdir(tmp_path)


# --- DPSK simulation ------------------------------------------------------------------------------------

def test_dpsk_simulation_names_coherence_ms_as_given():
    """--coherence-ms -5 was reported as coherence_s=-0.005 (the converted value, another unit)."""
    from modem.errors import ConfigError
    from modem.sim import dpsk
    with pytest.raises(ConfigError, match=r"--coherence-ms .*coherence_ms=-5"):
        dpsk.run(dpsk.default_args(fading="lognormal", coherence_ms=-5.0, frames=1))


def test_summary_separates_chain_and_decoder_throughput():
    """The summary's 'throughput' covers the channel simulation too; the decoder's own rate (the
    figure a user compares with a link rate) was only in the JSON."""
    import io
    from modem.sim.common import ErrorCounter, print_report, report
    c = ErrorCounter()
    c.update(np.zeros((2, 8), np.uint8), np.zeros((2, 8), np.uint8), [1, 1], [True, True])
    rep = report("scppm", c, 2.0, "cpu", {}, decode_seconds=0.5, decode_info_bits_per_s=32.0)
    out = io.StringIO()
    print_report(rep, False, file=out)
    text = out.getvalue()
    assert "channel simulation included" in text and "decoder          0.000 Mb/s" in text and "0.50 s decoding" in text
