# SPDX-License-Identifier: Apache-2.0
"""``modem simulate`` results depend on ``--seed`` and the link parameters only, never on the
performance knobs: ``--batch`` (codewords per decoder call) changes no random draw, no decision and
no count (SCPPM with and without the SNSPD dead time and the channel interleaver, DPSK full chain
and sampled blocks); other seeds give other draws; ``--frames`` rounded up to whole interleaver
blocks (or to a multiple of ``--frames-per-block``) is said in the report and the summary."""
from __future__ import annotations

import io

import numpy as np
import pytest

from modem.channel.poisson import apply_dead_time
from modem.cli import main
from modem.errors import ConfigError
from modem.sim import dpsk, scppm
from modem.sim.common import FrameStreams, print_report
from tests.test_sim_review import _scppm_args

BATCHES = (1, 7, 32)
_KEYS = ("frames", "frames_requested", "frame_errors", "bit_errors", "info_bits", "frames_flagged_bad",
         "undetected_errors", "iterations_mean", "params")


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("MODEM_BACKEND", "cpu")


def _run_scppm(monkeypatch, **kw):
    """scppm.run with the receiver's input and output recorded: (report, {name: array over the run})."""
    seen = {"u": [], "pulses": [], "y": [], "u_hat": [], "crc_ok": [], "iterations": []}

    class Tx(scppm.SCPPMTransmitter):
        def modulate(self, u):
            seen["u"].append(np.array(u))
            seen["pulses"].append(super().modulate(u))
            return seen["pulses"][-1]

    class Rx(scppm.SCPPMReceiver):
        def receive(self, counts):
            res = super().receive(counts)
            seen["y"].append(np.array(counts))
            for name in ("u_hat", "crc_ok", "iterations"):
                seen[name].append(np.asarray(getattr(res, name)))
            return res

    monkeypatch.setattr(scppm, "SCPPMTransmitter", Tx)
    monkeypatch.setattr(scppm, "SCPPMReceiver", Rx)
    rep = scppm.run(_scppm_args(**kw))
    return rep, {k: np.concatenate(v) for k, v in seen.items()}


SCPPM_CASES = {
    # near threshold: some codewords fail, so failed decodes (flags, iterations, bits) are compared too
    "poisson": {"order": 16, "ns": 1.42, "nb": 0.1, "frames": 24},
    # SNSPD with a dead time longer than the 4 guard slots: blocking runs across codewords and batches
    "dead-time": {"order": 16, "ns": 1.4, "nb": 0.01, "efficiency": 0.9, "dead_time": 8, "frames": 16},
    # channel interleaver (delay 3 codewords): the flush and the wire-row streams
    "interleaver": {"order": 16, "ns": 1.42, "nb": 0.1, "interleaver_rows": 4, "interleaver_shift": 945, "frames": 12},
}


@pytest.mark.parametrize("case", SCPPM_CASES)
def test_scppm_counts_do_not_depend_on_batch(monkeypatch, case):
    kw = SCPPM_CASES[case]
    ref, ref_seen = _run_scppm(monkeypatch, batch=BATCHES[0], **kw)
    assert 0 < ref["frame_errors"] < ref["frames"] == kw["frames"]       # the comparison covers both
    assert ref["frames_flagged_bad"] == ref["frame_errors"]
    for batch in BATCHES[1:]:
        got, got_seen = _run_scppm(monkeypatch, batch=batch, **kw)
        assert {k: got[k] for k in _KEYS} == {k: ref[k] for k in _KEYS}, batch
        for name, arr in ref_seen.items():      # same information bits, counts, decisions, flags
            np.testing.assert_array_equal(got_seen[name], arr, err_msg=f"{name}, batch={batch}")
    if case == "dead-time":                     # one detector over the whole slot stream
        hits = np.flatnonzero(ref_seen["y"].reshape(-1))
        assert hits.size > 1000 and np.diff(hits).min() > kw["dead_time"]


def test_scppm_dead_time_blocks_the_same_detections_as_without_it(monkeypatch):
    """The dead time is applied to exactly the detections drawn without it (same streams), as one
    slot stream over the whole run: ``apply_dead_time(stream without, d) == stream with``."""
    kw = {"order": 16, "ns": 1.4, "nb": 0.01, "efficiency": 0.9, "frames": 5}
    _, free = _run_scppm(monkeypatch, batch=2, dead_time=0, **kw)
    _, dead = _run_scppm(monkeypatch, batch=3, dead_time=8, **kw)
    y0, y8 = free["y"].reshape(-1), dead["y"].reshape(-1)
    np.testing.assert_array_equal(y8, apply_dead_time(y0, 8))
    assert np.count_nonzero(y8) < np.count_nonzero(y0)          # something was blocked


def test_scppm_first_codewords_do_not_depend_on_frames(monkeypatch):
    """Codeword i draws from its own streams: the first 5 codewords of a 9-codeword run are those of
    --frames 5 (no channel interleaver), whatever the batch."""
    kw = {"order": 16, "ns": 1.42, "nb": 0.1, "max_iter": 4}
    _, short = _run_scppm(monkeypatch, frames=5, batch=3, **kw)
    _, long = _run_scppm(monkeypatch, frames=9, batch=4, **kw)
    for name, arr in short.items():
        np.testing.assert_array_equal(long[name][:5], arr, err_msg=name)


def test_scppm_other_seed_other_draws(monkeypatch):
    kw = {"order": 16, "ns": 1.42, "nb": 0.1, "frames": 3, "batch": 3, "max_iter": 1}
    _, a = _run_scppm(monkeypatch, seed=1, **kw)
    _, b = _run_scppm(monkeypatch, seed=2, **kw)
    assert a["u"].shape == b["u"].shape and a["y"].shape == b["y"].shape
    assert np.mean(a["u"] != b["u"]) > 0.4            # independent bits differ in half the places
    assert np.mean(a["y"] != b["y"]) > 0.05           # counts: P(differ) ~ 2 nb at nb = 0.1
    # within a run, codewords draw from different streams too
    assert np.mean(a["u"][0] != a["u"][1]) > 0.4


def test_scppm_channel_draws_have_the_model_means(monkeypatch):
    """Per-codeword streams still draw the Poisson channel: mean counts ns + nb in pulsed slots and
    nb elsewhere (within 5 standard deviations), uncorrelated from one codeword to the next."""
    ns, nb = 1.42, 0.1
    _, s = _run_scppm(monkeypatch, order=16, ns=ns, nb=nb, frames=4, batch=3, max_iter=1)
    on = s["pulses"].astype(bool)
    y = s["y"].astype(float)
    for sel, mean in ((on, ns + nb), (~on, nb)):
        n = np.count_nonzero(sel)
        assert abs(y[sel].mean() - mean) < 5 * np.sqrt(mean / n), (mean, y[sel].mean())
    off = np.where(on, np.nan, y)                  # background counts of codewords 0 and 1, same slots
    both = ~np.isnan(off[0]) & ~np.isnan(off[1])
    r = np.corrcoef(off[0][both], off[1][both])[0, 1]
    assert abs(r) < 5 / np.sqrt(np.count_nonzero(both))


def test_frame_streams_are_keyed_by_seed_purpose_and_index():
    s = FrameStreams(7)
    x = s(1, 5).integers(0, 2**63, 4)
    np.testing.assert_array_equal(s(1, 5).integers(0, 2**63, 4), x)          # reproducible, any order
    child = np.random.SeedSequence(7).spawn(2)[1].spawn(6)[5]                 # the documented tree
    np.testing.assert_array_equal(np.random.Generator(np.random.PCG64(child)).integers(0, 2**63, 4), x)
    others = [FrameStreams(8)(1, 5), s(0, 5), s(1, 4), s(1, 6)]
    for g in others:
        assert not np.array_equal(g.integers(0, 2**63, 4), x)


@pytest.mark.parametrize("seed", [-1, True, 1.5, "3"])
def test_frame_streams_refuse_bad_seed(seed):
    with pytest.raises(ConfigError, match=r"seed="):
        FrameStreams(seed, "scppm simulation")
    with pytest.raises(ConfigError, match=r"dpsk simulation: --seed .*seed="):
        dpsk.run(dpsk.default_args(seed=seed, frames=1))


# --- DPSK ------------------------------------------------------------------------------------------------

def _run_dpsk(monkeypatch, **kw):
    """dpsk.run with every block's channel LLRs recorded: (report, LLRs (frames, n))."""
    seen = []
    full, sampled = dpsk._Link.full_block, dpsk._Link.sampled_block

    def rec_full(self, c_rand, rng):
        seen.append(full(self, c_rand, rng))
        return seen[-1]

    def rec_sampled(self, c_rand, rows, rng):
        seen.append(sampled(self, c_rand, rows, rng))
        return seen[-1]

    monkeypatch.setattr(dpsk._Link, "full_block", rec_full)
    monkeypatch.setattr(dpsk._Link, "sampled_block", rec_sampled)
    rep = dpsk.run(dpsk.default_args(**kw))
    return rep, np.concatenate(seen)


DPSK_CASES = {
    "full": {"ppb": 1.3, "frames": 12},
    # interleaver blocks of D = 2 codewords, fading carried from block to block
    "interleaved-fading": {"ppb": 1.6, "frames": 8, "interleaver_ms": 0.01, "fading": "lognormal", "coherence_ms": 0.01},
    # K = 2 sampled codewords of blocks of D = 9
    "sampled": {"ppb": 1.3, "frames": 6, "interleaver_ms": 0.05, "frames_per_block": 2},
}


@pytest.mark.parametrize("case", DPSK_CASES)
def test_dpsk_counts_do_not_depend_on_batch(monkeypatch, case):
    kw = DPSK_CASES[case]
    keys = _KEYS + ("raw_bit_errors", "raw_bits", "interleaver_blocks")
    ref, ref_llr = _run_dpsk(monkeypatch, batch=BATCHES[0], **kw)
    assert ref["frames"] == kw["frames"] and ref_llr.shape[0] == kw["frames"]
    assert ref["raw_bit_errors"] > 0
    if case != "sampled":
        assert 0 < ref["frame_errors"] < ref["frames"]
    for batch in BATCHES[1:]:
        got, got_llr = _run_dpsk(monkeypatch, batch=batch, **kw)
        np.testing.assert_array_equal(got_llr, ref_llr, err_msg=f"batch={batch}")
        ref["params"]["batch"] = batch          # the one parameter that differs (and is reported)
        assert {k: got[k] for k in keys} == {k: ref[k] for k in keys}, batch


def test_dpsk_other_seed_other_draws(monkeypatch):
    kw = {"ppb": 1.3, "frames": 2, "max_iter": 1}
    _, a = _run_dpsk(monkeypatch, seed=1, **kw)
    _, b = _run_dpsk(monkeypatch, seed=2, **kw)
    assert a.shape == b.shape and np.mean(a != b) > 0.9


@pytest.mark.parametrize("kw,frames,per", [
    ({"frames": 5, "interleaver_ms": 0.01}, 6, "whole interleaver blocks of 2 frames"),
    ({"frames": 5, "interleaver_ms": 0.05, "frames_per_block": 2}, 6, "2 sampled frames per interleaver block"),
    ({"frames": 4, "interleaver_ms": 0.01}, 4, None),
])
def test_dpsk_frames_rounded_up_is_reported(kw, frames, per):
    rep = dpsk.run(dpsk.default_args(ppb=3.0, max_iter=2, **kw))
    assert (rep["frames"], rep["frames_requested"]) == (frames, kw["frames"])
    assert rep["info_bits"] == frames * rep["params"]["k"]
    out = io.StringIO()
    print_report(rep, False, file=out)
    lines = out.getvalue().splitlines()
    if per is None:
        assert "note_frames" not in rep and "rounded" not in out.getvalue()
        return
    note = f"--frames {kw['frames']} rounded up to {frames} ({per})"
    assert rep["note_frames"] == note
    i = next(i for i, line in enumerate(lines) if line.strip().startswith("frames "))
    assert lines[i + 1].split(None, 1) == ["note_frames", note]        # right under the frames line
    assert sum("rounded up" in line for line in lines) == 1


def test_dpsk_frames_per_block_not_below_depth_is_reported():
    """K >= D runs the full chain: the report says so instead of looking like a sampled run."""
    rep = dpsk.run(dpsk.default_args(ppb=3.0, max_iter=2, frames=3, interleaver_ms=0.01, frames_per_block=2))
    assert rep["frames"] == 4 and rep["note_frames"].endswith("(whole interleaver blocks of 2 frames)")
    assert rep["note_sampling"] == ("--frames-per-block 2 >= interleaver depth 2: every frame of each block "
                                    "simulated (full chain)")
    out = io.StringIO()
    print_report(rep, False, file=out)
    assert "note_sampling" in out.getvalue()
    assert "note_sampling" not in dpsk.run(dpsk.default_args(ppb=3.0, max_iter=2, frames=2, interleaver_ms=0.01))


def test_scppm_reports_the_frames_requested(monkeypatch):
    rep, _ = _run_scppm(monkeypatch, order=16, ns=3.0, nb=0.1, frames=3, batch=2, max_iter=2)
    assert rep["frames"] == rep["frames_requested"] == 3 and "note_frames" not in rep


@pytest.mark.parametrize("chain,words", [("dpsk", ("rounded up", "speed only")), ("scppm", ("speed only",))])
def test_cli_help_says_what_frames_and_batch_do(capsys, chain, words):
    with pytest.raises(SystemExit):
        main(["simulate", chain, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for w in words:
        assert w in text
