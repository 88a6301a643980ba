# SPDX-License-Identifier: Apache-2.0
"""Review of the per-channel delay (skew) compensation (modem/sync/deskew.py and its use by the
readers and ``modem decode --deskew``): each test shows one bug found in review, fixed since."""
from dataclasses import replace

import numpy as np
import pytest

from modem.errors import ConfigError, ShapeError
from modem.fec.scppm import SCPPMCode, SCPPMTransmitter
from modem.io import write_timetags_hdf5
from modem.io.generate import PRESETS, generate_scppm_pass, write_pass
from modem.offline import decode_capture
from modem.sync.deskew import ChannelDeskew, channel_delays, estimate_channel_delays
from modem.sync.timetags import TimeTagConfig, simulate_time_tags


def _true_offsets(est, true):
    """(channel, measured - true) of every channel not unresolved, true delays taken relative to
    the estimate's reference."""
    return {c: est.delays_ps.get(c, 0) - (true[c] - true[est.reference])
            for c in range(len(true)) if c not in est.unresolved}


# --------------------------------------------------------- an empty capture with --deskew auto
def test_auto_deskew_of_an_empty_capture_is_a_counted_result(tmp_path):
    """An empty time-tag capture decodes to a report of 0 frames with deskew "meta"; with "auto" it
    raised ConfigError ("no time tags to measure channel delays from") instead of the same report."""
    g = generate_scppm_pass(replace(PRESETS["snspd16"], n_packets=1, cloud_ms=0.0))
    p = str(tmp_path / "empty.h5")
    write_timetags_hdf5(p, np.zeros(0, np.int64), np.zeros(0, np.int16), g.meta)
    meta = decode_capture(p)
    auto = decode_capture(p, deskew="auto")
    assert auto["frames"] == meta["frames"] and auto["frames"]["total"] == 0
    assert auto["deskew"]["mode"] == "auto" and auto["deskew"]["channel_delays_ps"] == {}


# ---------------------------------------- a busiest channel without signal as the reference
def _hot_pixel_tags():
    """Pixels 0..2 see the 16-PPM signal (cable delays 0, 1700, -400 ps); pixel 3 sees none but
    counts more than any of them (a noisy pixel, or one outside the beam spot)."""
    code = SCPPMCode(M=16, rate="1/2")
    x = SCPPMTransmitter(code).modulate(np.random.default_rng(2).integers(0, 2, (4, code.k), dtype=np.uint8))
    cfg = TimeTagConfig(slot_width_ps=1000.0, jitter_rms_ps=50.0, n_channels=3, channel_delays_ps=(0.0, 1700.0, -400.0),
                        dark_count_rate_hz=1e5)
    tags = simulate_time_tags(x, 3.0, 0.01, 4, cfg)
    rng = np.random.default_rng(1)
    n3 = int(tags.t_ps.size * 0.6)
    t = np.concatenate([tags.t_ps, rng.integers(tags.t_ps[0], tags.t_ps[-1], n3)])
    ch = np.concatenate([tags.channel, np.full(n3, 3, np.int16)])
    o = np.argsort(t, kind="stable")
    return t[o], ch[o], (0.0, 1700.0, -400.0, 0.0)


def test_estimate_with_a_busiest_pixel_that_has_no_signal():
    """The default reference was the busiest channel: a pixel with no signal there left every
    other pixel unresolved (delays {}), though each pair of the others shows a 150-sigma tooth."""
    t, ch, true = _hot_pixel_tags()
    assert np.argmax(np.bincount(ch)) == 3
    est = estimate_channel_delays(t, ch, 1000.0)
    assert est.unresolved == (3,) and est.reference in (0, 1, 2)
    assert all(abs(e) <= 10 for e in _true_offsets(est, true).values()), est
    # the reference named by the caller is kept: without signal on it, nothing can be measured
    est3 = estimate_channel_delays(t, ch, 1000.0, reference=3)
    assert est3.reference == 3 and est3.delays_ps == {} and set(est3.unresolved) == {0, 1, 2}


# ------------------------------------------------- a large array of weak pixels (bootstrap)
@pytest.fixture(scope="module")
def weak32():
    """The deep-space preset on a 32-pixel array: 2.5 detected photons per pulse spread over 32
    pixels, so no pixel shows 8 sigma against any other one alone."""
    rng = np.random.default_rng(5)
    true = (0.0, *rng.uniform(-3000, 3000, 31).round(1))
    g = generate_scppm_pass(replace(PRESETS["deepspace128"], channel_delays_ps=true, n_channels=32, n_packets=12))
    return g, true


def test_estimate_32_weak_pixels_none_significant_against_one_other(weak32):
    """Every pixel was measured first against the reference pixel alone: with no pair above
    min_significance nothing was resolved, so the aligned-array rounds never started."""
    g, true = weak32
    est = estimate_channel_delays(g.t_ps, g.channel, 1000.0)
    assert est.unresolved == ()
    assert all(abs(e) <= 30 for e in _true_offsets(est, true).values()), est     # 50 ps jitter
    assert min(est.significance.values()) > 8


def test_decode_auto_32_weak_pixels(weak32, tmp_path):
    """With the true delays every frame decodes; --deskew auto decoded none (nothing resolved).
    Now auto gives the frames the true delays give."""
    g, true = weak32
    p = str(tmp_path / "weak32.h5")
    write_pass(g, p)
    known = decode_capture(p, meta_overrides={"channel_delays_ps": list(true)})
    assert known["frames"]["good"] == g.n_frames and known["packets"]["payload_sha256"] == g.payload_sha256
    rep = decode_capture(p, deskew="auto")
    assert rep["deskew"]["estimate"]["unresolved"] == []
    assert rep["frames"] == known["frames"]
    assert rep["packets"]["payload_sha256"] == g.payload_sha256


def test_estimate_no_false_teeth_from_the_bootstrap():
    """Background only on 6 pixels (the bootstrap runs: nothing resolves directly): nothing is
    resolved and no significance reaches the threshold."""
    rng = np.random.default_rng(11)
    n = 300_000
    t = np.sort(rng.integers(0, n * 1000, n)).astype(np.int64)
    ch = rng.integers(0, 6, n)
    est = estimate_channel_delays(t, ch, 1000.0)
    assert est.delays_ps == {} and len(est.unresolved) == 5
    assert max(est.significance.values()) < 8


# ------------------------------------------------------------------------- bad inputs named
def test_estimate_refuses_float_tags_and_channels():
    """Float tags (e.g. seconds) were truncated to int64 silently: every tag became 0 and an
    estimate came back as if the data were good."""
    with pytest.raises(ShapeError, match="integers, got float64, int64"):
        estimate_channel_delays(np.array([0.0, 1e-9, 2e-9]), np.array([0, 1, 0]), 1000.0)
    with pytest.raises(ShapeError, match="integers, got int64, float64"):
        estimate_channel_delays(np.array([0, 5, 9]), np.array([0.0, 1.5, 0.0]), 1000.0)


def test_estimate_default_search_range_on_a_slow_link():
    """The default max_delay_ps (64 slots) exceeds MAX_DELAY_PS for slots over 15.6 us: the
    estimator raised about a max_delay_ps of 1.28e9 the caller never gave."""
    est = estimate_channel_delays(np.array([0, 5, 9, 12]), np.array([0, 1, 0, 1]), 2e7)
    assert est.delays_ps == {} and est.unresolved == (1,)


def test_delay_table_zero_dimensional_array_is_named():
    """A 0-d array (a scalar read from a file) raised TypeError ('iteration over a 0-d array')
    instead of the ConfigError naming the value."""
    with pytest.raises(ConfigError, match="channel_delays_ps: must be"):
        channel_delays(np.array(250.0))
    with pytest.raises(ConfigError, match="channel_delays_ps: must be"):
        ChannelDeskew(np.array(250.0))


# ------------------------------------------------------------- the writers store any table form
@pytest.mark.parametrize("ext", ["h5", "ptu"])
def test_writers_store_a_delay_table_with_numpy_keys(tmp_path, ext):
    """``channel_delays`` reads ``{np.int64(1): np.int64(1848), ...}`` (a table built from arrays),
    but both writers raised TypeError ('keys must be str, int, ...', no value named; the HDF5 file
    left half written); a bad table is refused before any file is written, naming the entry."""
    from modem.io import open_capture, write_ptu_t2
    g = generate_scppm_pass(replace(PRESETS["snspd16"], n_packets=1, cloud_ms=0.0))
    write = write_timetags_hdf5 if ext == "h5" else write_ptu_t2
    table = dict(zip(np.arange(1, 4), np.array([1848, 92, -1285])))
    p = str(tmp_path / f"numpy_keys.{ext}")
    write(p, g.t_ps, g.channel, {**g.meta, "channel_delays_ps": table})
    with open_capture(p) as cap:
        assert channel_delays(cap.meta["channel_delays_ps"]) == {1: 1848, 2: 92, 3: -1285}
    q = str(tmp_path / f"bad.{ext}")
    with pytest.raises(ConfigError, match="delay of channel 2 must be .* got 'x'"):
        write(q, g.t_ps, g.channel, {**g.meta, "channel_delays_ps": {1: 5, 2: "x"}})
    assert not (tmp_path / f"bad.{ext}").exists()
