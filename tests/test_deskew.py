# SPDX-License-Identifier: Apache-2.0
"""Per-channel delay (skew) compensation of SNSPD time tags: the delay table, the streaming
compensation (chunk-invariant), the estimator (accuracy, weak pixels, no false teeth), the simulator's
cable delays, the capture readers, ``modem decode --deskew`` and ``modem capture delays``."""
import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modem.cli import main
from modem.errors import CaptureFormatError, ConfigError, ShapeError
from modem.fec.scppm import SCPPMCode, SCPPMTransmitter
from modem.io import open_capture
from modem.io.generate import PRESETS, generate_scppm_pass, write_pass
from modem.offline import decode_capture, measure_channel_delays
from modem.sync.deskew import ChannelDeskew, channel_delays, estimate_channel_delays
from modem.sync.timetags import TimeTagConfig, simulate_time_tags

# a 4-pixel array with cable delays of up to ~3 slots of 1 ns (true delays, channel 0 = 0)
DELAYS = (0.0, 1848.0, 92.0, -1285.0)


# ------------------------------------------------------------------------------------ delay table
def test_delay_table_forms():
    assert channel_delays(None) == {}
    assert channel_delays({"1": 250, "3": -12.4, "0": 0}) == {1: 250, 3: -12}
    assert channel_delays({2: 7.6}) == {2: 8}
    assert channel_delays([0, 10, 0, -5]) == {1: 10, 3: -5}
    assert channel_delays('{"1": 250}') == {1: 250}
    assert channel_delays("[0, 3]") == {1: 3}


@pytest.mark.parametrize("bad,named", [
    ({"1": float("nan")}, "nan"), ({"1": True}, "True"), ({"x": 3}, "'x'"), ({"1": "3"}, "'3'"),
    ({"1": 2e9}, "2000000000.0"), ({"1": 1, 1: 2}, "channel 1 given twice"), ("{1:", "'{1:'"),
    (3.0, "3.0"), ({1.5: 3}, "1.5"),
])
def test_delay_table_bad_values_are_named(bad, named):
    with pytest.raises(ConfigError, match="channel_delays_ps") as e:
        channel_delays(bad)
    assert named in str(e.value)


# ------------------------------------------------------------------------------ streaming deskew
def _raw_tags(n, n_ch, seed):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 40 * n, n)).astype(np.int64)       # dense: many ties and overlaps
    return t, rng.integers(0, n_ch, n).astype(np.int16)


def _reference(t, ch, table):
    c = t - np.array([table.get(int(x), 0) for x in ch], np.int64)
    o = np.argsort(c, kind="stable")
    return c[o], ch[o].astype(np.int64)


def _run_chunks(dk, t, ch, cuts):
    outs = []
    for a, b in zip([0, *cuts], [*cuts, t.size]):
        outs.append(dk.push(t[a:b], ch[a:b]))
    outs.append(dk.flush())
    return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3000), max_size=8), st.integers(0, 2 ** 31))
def test_deskew_same_output_whatever_the_chunking(cuts, seed):
    t, ch = _raw_tags(3000, 4, seed)
    table = {1: 1848, 2: 92, 3: -1285}
    want = _reference(t, ch, table)
    dk = ChannelDeskew(table)
    got = _run_chunks(dk, t, ch, sorted(cuts))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert dk.held == 0


def test_deskew_emits_early_and_holds_only_the_skew_window():
    t, ch = _raw_tags(20000, 4, 1)
    table = {1: 1848, 3: -1285}
    dk = ChannelDeskew(table)
    out_t, _ = dk.push(t[:10000], ch[:10000])
    assert np.all(np.diff(out_t) >= 0)
    # everything not held is out; the held tags lie within max(d) - min(d, 0) of the last raw tag
    assert out_t.size + dk.held == 10000
    lo = t[9999] - 1848 - 1285
    assert dk.held and dk._t.min() >= lo - 1
    assert out_t.size > 9000


def test_deskew_bad_input_is_named():
    dk = ChannelDeskew({1: 10})
    with pytest.raises(ShapeError, match=r"t_ps\[2\]=5 < 9"):
        dk.push(np.array([1, 9, 5]), np.array([0, 0, 0]))
    dk = ChannelDeskew({1: 10})
    dk.push(np.array([100]), np.array([0]))
    with pytest.raises(ShapeError, match=r"t_ps\[0\]=50 < 100"):            # across chunks too
        dk.push(np.array([50]), np.array([1]))
    with pytest.raises(ShapeError, match="one length"):
        ChannelDeskew({}).push(np.array([1, 2]), np.array([0]))
    with pytest.raises(ShapeError, match="integers"):
        ChannelDeskew({}).push(np.array([1.5]), np.array([0]))


def test_no_delays_passes_tags_through():
    t, ch = _raw_tags(500, 3, 2)
    got = _run_chunks(ChannelDeskew({}), t, ch, [100, 250])
    np.testing.assert_array_equal(got[0], t)


# ------------------------------------------------------------------------------------- simulator
def test_simulator_adds_each_channels_delay_to_all_its_clicks():
    code = SCPPMCode(M=16, rate="1/2")
    x = SCPPMTransmitter(code).modulate(np.random.default_rng(0).integers(0, 2, (2, code.k), dtype=np.uint8))
    base = dict(slot_width_ps=1000.0, jitter_rms_ps=40.0, dark_count_rate_hz=1e5, dead_time_ps=15000.0,
                n_channels=4, t0_ps=5e6)
    a = simulate_time_tags(x, 3.0, 0.02, 7, TimeTagConfig(**base))
    b = simulate_time_tags(x, 3.0, 0.02, 7, TimeTagConfig(**base, channel_delays_ps=(0, 1848, 92, -1285)))
    assert a.t_ps.size == b.t_ps.size and np.all(np.diff(b.t_ps) >= 0)
    for c, d in enumerate((0, 1848, 92, -1285)):
        np.testing.assert_array_equal(np.sort(b.t_ps[b.channel == c]), np.sort(a.t_ps[a.channel == c]) + d)
    with pytest.raises(ConfigError, match="channel_delays_ps must be 4 finite"):
        TimeTagConfig(n_channels=4, channel_delays_ps=(0, 1, 2))
    with pytest.raises(ConfigError, match="channel_delays_ps"):
        TimeTagConfig(n_channels=2, channel_delays_ps=(0, float("inf")))


# ------------------------------------------------------------------------------------- estimator
@pytest.fixture(scope="module")
def skewed16():
    """A 16-PPM 4-pixel pass with uncalibrated cable delays (no cloud)."""
    return generate_scppm_pass(replace(PRESETS["snspd16"], channel_delays_ps=DELAYS, n_packets=20, cloud_ms=0.0))


def _check_estimate(est, true, tol_ps):
    ref = est.reference
    for c, d in enumerate(true):
        assert abs(est.delays_ps.get(c, 0) - (d - true[ref])) <= tol_ps, (c, est)


def test_estimate_16ppm_four_pixels(skewed16):
    est = estimate_channel_delays(skewed16.t_ps, skewed16.channel, 1000.0)
    assert est.unresolved == () and est.reference in range(4)
    _check_estimate(est, DELAYS, 10)                      # 50 ps jitter per photon
    assert min(est.significance.values()) > 50
    # the same measured against a chosen reference
    est0 = estimate_channel_delays(skewed16.t_ps, skewed16.channel, 1000.0, reference=0)
    _check_estimate(est0, DELAYS, 10)
    assert est0.reference == 0 and 0 not in est0.delays_ps


def test_estimate_128ppm_sixteen_weak_pixels_resolved_against_the_merged_array():
    """16 pixels at 2.5 detected photons per pulse and 4x more background than signal: one pixel
    against another shows a tooth of ~8 sigma (some fall short); against the aligned others, ~40."""
    rng = np.random.default_rng(5)
    true = (0.0, *rng.uniform(-3000, 3000, 15).round(1))
    g = generate_scppm_pass(replace(PRESETS["deepspace128"], channel_delays_ps=true, n_packets=12))
    est = estimate_channel_delays(g.t_ps, g.channel, 1000.0)
    assert est.unresolved == ()
    _check_estimate(est, true, 15)
    assert min(est.significance.values()) > 20


def test_estimate_finds_whole_slot_delays_beyond_a_symbol():
    """A delay of 41.3 slots (two 16-PPM symbols): the same-pulse tooth, not a neighbour's."""
    code = SCPPMCode(M=16, rate="1/2")
    x = SCPPMTransmitter(code).modulate(np.random.default_rng(1).integers(0, 2, (6, code.k), dtype=np.uint8))
    cfg = TimeTagConfig(slot_width_ps=500.0, jitter_rms_ps=30.0, n_channels=2, channel_delays_ps=(0.0, 20650.0),
                        dark_count_rate_hz=1e5)
    tags = simulate_time_tags(x, 2.0, 0.01, 3, cfg)
    est = estimate_channel_delays(tags.t_ps, tags.channel, 500.0, reference=0)
    assert abs(est.delays_ps[1] - 20650) <= 10


def test_estimate_leaves_channels_without_signal_unresolved():
    """No false teeth: background and dark counts only (no pulses) -> nothing resolved; and a pixel
    that sees only dark counts stays at 0 while the others are measured."""
    rng = np.random.default_rng(9)
    n = 400_000
    t = np.sort(rng.integers(0, n * 1000, n)).astype(np.int64)     # ~1 count per ns on 4 channels
    ch = rng.integers(0, 4, n)
    est = estimate_channel_delays(t, ch, 1000.0)
    assert est.delays_ps == {} and len(est.unresolved) == 3
    assert max(est.significance.values()) < 8
    code = SCPPMCode(M=16, rate="1/2")
    x = SCPPMTransmitter(code).modulate(np.random.default_rng(2).integers(0, 2, (4, code.k), dtype=np.uint8))
    cfg = TimeTagConfig(slot_width_ps=1000.0, jitter_rms_ps=50.0, n_channels=3, channel_weights=(1, 1, 0),
                        channel_delays_ps=(0.0, 700.0, 300.0), dark_count_rate_hz=2e6)
    tags = simulate_time_tags(x, 3.0, 0.01, 4, cfg)
    assert np.count_nonzero(tags.channel == 2) > 300                   # dark counts only
    est = estimate_channel_delays(tags.t_ps, tags.channel, 1000.0, reference=0)
    assert est.unresolved == (2,) and 2 not in est.delays_ps
    assert abs(est.delays_ps[1] - 700) <= 10


def test_estimate_bad_arguments_are_named():
    t, ch = np.array([0, 5, 9]), np.array([0, 1, 0])
    with pytest.raises(ConfigError, match="slot_width_ps must be a positive number, got 0"):
        estimate_channel_delays(t, ch, 0)
    with pytest.raises(ConfigError, match="max_delay_ps"):
        estimate_channel_delays(t, ch, 1000.0, max_delay_ps=-1)
    with pytest.raises(ConfigError, match="reference channel 7 has no tags"):
        estimate_channel_delays(t, ch, 1000.0, reference=7)
    with pytest.raises(ShapeError, match=r"t_ps\[1\]=3 < 5"):
        estimate_channel_delays(np.array([5, 3]), np.array([0, 1]), 1000.0)
    with pytest.raises(ConfigError, match="no tags"):
        estimate_channel_delays(np.zeros(0, np.int64), np.zeros(0, int), 1000.0)
    assert estimate_channel_delays(t, np.zeros(3, int), 1000.0).delays_ps == {}      # one channel


# ------------------------------------------------------------------------ captures and decoding
@pytest.fixture(scope="module")
def skewed_files(skewed16, tmp_path_factory):
    d = tmp_path_factory.mktemp("skew")
    paths = {}
    for ext in ("h5", "ptu"):
        p = str(d / f"skew16.{ext}")
        write_pass(skewed16, p)
        paths[ext] = p
    return paths


TABLE = {"1": 1848, "2": 92, "3": -1285}


@pytest.mark.parametrize("ext", ["h5", "ptu"])
def test_reader_applies_the_delay_table_whatever_the_chunk(skewed16, skewed_files, ext):
    want = _reference(skewed16.t_ps, skewed16.channel, {int(k): v for k, v in TABLE.items()})[0]
    for n in (1000, 65536, 1 << 20):
        with open_capture(skewed_files[ext], {"channel_delays_ps": TABLE}) as cap:
            got = np.concatenate(list(cap.chunks(n)))
            np.testing.assert_array_equal(got, want)
            assert cap.stats["photons"] == skewed16.t_ps.size
    with open_capture(skewed_files[ext]) as cap:                      # raw, with channel ids
        parts = list(cap.tagged_chunks(5000))
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), skewed16.t_ps)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), skewed16.channel)


def test_reader_refuses_a_bad_delay_table_naming_the_file(skewed_files):
    with pytest.raises(CaptureFormatError, match=r"skew16\.h5: bad link parameters: channel_delays_ps: delay of "
                                                 r"channel 1 must be"):
        open_capture(skewed_files["h5"], {"channel_delays_ps": {"1": "far"}})


def test_delay_table_stored_in_the_hdf5_file(skewed16, tmp_path):
    from modem.io import write_timetags_hdf5
    p = str(tmp_path / "with_table.h5")
    write_timetags_hdf5(p, skewed16.t_ps, skewed16.channel, {**skewed16.meta, "channel_delays_ps": TABLE})
    rep = decode_capture(p)
    assert rep["frames"]["good"] == skewed16.n_frames and rep["frames"]["bad"] == 0
    assert rep["deskew"] == {"mode": "meta", "channel_delays_ps": TABLE, "estimate": None}


def test_decode_skewed_pass_needs_the_delays(skewed16, skewed_files):
    """Uncompensated, the skew (up to 3.1 slots) loses every frame; with the delay table, or with
    the delays measured from the capture itself, every frame and the exact payload come back."""
    raw = decode_capture(skewed_files["h5"])
    assert raw["frames"]["good"] == 0 and raw["quality"]["codewords_crc_failed"] > 0
    for path in skewed_files.values():
        rep = decode_capture(path, meta_overrides={"channel_delays_ps": TABLE})
        assert rep["frames"]["good"] == skewed16.n_frames and rep["frames"]["bad"] == 0
        assert rep["packets"]["payload_sha256"] == skewed16.payload_sha256
    auto = [decode_capture(skewed_files["h5"], deskew="auto", chunk=c) for c in (4096, 1 << 18)]
    for rep in auto:
        assert rep["frames"]["good"] == skewed16.n_frames and rep["frames"]["bad"] == 0
        assert rep["packets"]["payload_sha256"] == skewed16.payload_sha256
        est = rep["deskew"]["estimate"]
        assert rep["deskew"]["mode"] == "auto" and est["unresolved"] == []
        assert rep["deskew"]["channel_delays_ps"] == est["delays_ps"]
    assert auto[0]["frames"]["frames_sha256"] == auto[1]["frames"]["frames_sha256"]
    with pytest.raises(ConfigError, match="deskew must be one of meta, auto, got 'on'"):
        decode_capture(skewed_files["h5"], deskew="on")


def test_measure_refuses_sample_captures_and_bad_counts(skewed_files):
    with pytest.raises(ConfigError, match="max_tags must be an integer >= 2, got 0"):
        measure_channel_delays(skewed_files["h5"], max_tags=0)
    est = measure_channel_delays(skewed_files["ptu"], max_tags=30000)
    assert est.tags == 30000


def test_cli_measures_then_decodes_with_the_printed_param(skewed16, skewed_files, capsys):
    assert main(["capture", "delays", skewed_files["ptu"]]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["unresolved"] == [] and out["param"].startswith("channel_delays_ps=")
    assert main(["decode", skewed_files["ptu"], "--json", "--no-progress", "--param", out["param"]]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["frames"]["good"] == skewed16.n_frames
    assert rep["packets"]["payload_sha256"] == skewed16.payload_sha256
    assert main(["decode", skewed_files["h5"], "--no-progress", "--deskew", "auto"]) == 0
    assert "deskew   auto: ch" in capsys.readouterr().out


def test_auto_deskew_finds_the_delays_after_a_dark_lead_in(skewed16, tmp_path, monkeypatch):
    """A pass recorded from before the link came up: three measuring windows of background and dark
    counts only, then the skewed link. The first window alone resolves nothing; ``--deskew auto``
    measures where the link is up and every frame decodes, with the exact payload."""
    import modem.offline as offline
    window = 40_000
    monkeypatch.setattr(offline, "DESKEW_TAGS", window)
    rng = np.random.default_rng(21)
    n_dark = 3 * window + 123
    t0 = int(skewed16.t_ps[0])
    t_dark = np.sort(rng.integers(t0 - 40 * n_dark * 1000, t0 - 5_000_000, n_dark)).astype(np.int64)
    t = np.concatenate([t_dark, skewed16.t_ps])
    ch = np.concatenate([rng.integers(0, 4, n_dark), skewed16.channel])
    from modem.io import write_timetags_hdf5
    p = str(tmp_path / "late_link.h5")
    write_timetags_hdf5(p, t, ch, skewed16.meta)
    first = estimate_channel_delays(t[:window], ch[:window], 1000.0)
    assert first.delays_ps == {}                                  # the first window: nothing to find
    rep = decode_capture(p, deskew="auto")
    est = rep["deskew"]["estimate"]
    assert est["unresolved"] == [] and est["first_tag"] >= n_dark - window
    assert est["search"]["stop"] == "confirmed" and est["search"]["tags_read"] < t.size
    _check_estimate(_estimate_from_json(est), DELAYS, 10)
    assert rep["frames"]["good"] == skewed16.n_frames and rep["frames"]["bad"] == 0
    assert rep["packets"]["payload_sha256"] == skewed16.payload_sha256


def _estimate_from_json(est_json):
    """The fields _check_estimate reads, from a report's estimate."""
    from types import SimpleNamespace
    return SimpleNamespace(reference=est_json["reference"],
                           delays_ps={int(c): v for c, v in est_json["delays_ps"].items()})
