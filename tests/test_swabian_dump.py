# SPDX-License-Identifier: Apache-2.0
"""Swabian Time Tagger raw tag streams (``.dump``, 16-octet ``struct Tag`` records) read without
the vendor software: the record layout, a whole pass decoded, the tagger's overflows, missed events
and error records accounted for, garbage records and garbled times skipped (chunk-invariant), a
truncated file, and the link-parameter side file."""
import json
import struct
from dataclasses import replace

import numpy as np
import pytest

from modem.errors import CaptureFormatError
from modem.io import detect_format, open_capture
from modem.io.generate import PRESETS, generate_scppm_pass
from modem.io.swabian import TAG_DTYPE, SpikeFilter, write_swabian_dump
from modem.offline import decode_capture


@pytest.fixture(scope="module")
def gp():
    return generate_scppm_pass(replace(PRESETS["snspd16"], n_packets=12, cloud_ms=0.0))


def _read_all(path, n, **kw):
    with open_capture(path, **kw) as cap:
        parts = list(cap.tagged_chunks(n))
        stats = dict(cap.stats)
    t = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    ch = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    return t, ch, stats


def test_record_layout_is_swabians_struct_tag(tmp_path):
    """type u8, reserved u8, missed events u16, channel i32, time i64 (ps), little-endian: written
    here with ``struct``, independently of the reader's dtype."""
    assert TAG_DTYPE.itemsize == 16
    p = tmp_path / "two.dump"
    p.write_bytes(struct.pack("<BBHiq", 0, 0, 0, -3, 123_456_789) + struct.pack("<BBHiq", 4, 0, 17, 2, 200_000_000)
                  + struct.pack("<BBHiq", 0, 0, 0, 5, 987_654_321_012))
    t, ch, st = _read_all(str(p), 10, meta_overrides=dict(PRESETS["snspd16"].link_meta()))
    assert t.tolist() == [123_456_789, 987_654_321_012] and ch.tolist() == [-3, 5]
    assert st["missed_events"] == 17 and st["records"] == 3 and st["per_channel"] == {-3: 1, 5: 1}
    assert detect_format(str(p)) == "swabian-dump"


def test_a_pass_decodes_from_a_dump_as_from_hdf5(gp, tmp_path):
    p = str(tmp_path / "pass.dump")
    assert write_swabian_dump(p, gp.t_ps, gp.channel, gp.meta) == gp.t_ps.size
    rep = decode_capture(p)
    assert rep["format"] == "swabian-dump"
    assert rep["frames"]["good"] == gp.n_frames and rep["frames"]["bad"] == 0
    assert rep["packets"]["payload_sha256"] == gp.payload_sha256
    assert rep["photons"]["tags"] == gp.t_ps.size
    assert rep["gaps"]["tagger_overflows"] == [] and rep["reader"]["bad_records"] == 0


def _special(kind, t, missed=0, channel=0):
    r = np.zeros(1, TAG_DTYPE)
    r["type"], r["time"], r["missed"], r["channel"] = kind, t, missed, channel
    return r


def test_tagger_overflows_missed_events_and_errors_are_accounted_for(gp, tmp_path):
    """An overflow (the tagger's buffer full: its tags lost) is listed with its begin and end and
    the receiver sees the gap; missed events and error records are counted; the frames outside the
    overflow still decode."""
    t, ch = gp.t_ps, gp.channel
    a, b = t[t.size // 2], t[t.size // 2] + 200_000_000          # 200 us lost
    lost = (t >= a) & (t <= b)
    extra = np.concatenate([_special(2, a), _special(3, b), _special(4, t[100], missed=5, channel=1),
                            _special(1, t[200])])
    p = str(tmp_path / "ovf.dump")
    write_swabian_dump(p, t[~lost], ch[~lost], gp.meta, extra=extra)
    rep = decode_capture(p)
    g = rep["gaps"]
    assert g["tagger_overflows"] == [[int(a), int(b)]]
    assert rep["reader"]["overflows"] == 1 and rep["reader"]["missed_events"] == 5 and rep["reader"]["errors"] == 1
    assert [r["kind"] for r in g["corrupt_regions"]] == ["error"]
    assert rep["photons"]["tags"] == int((~lost).sum())
    assert 0 < rep["frames"]["good"] < gp.n_frames                       # the frames around the gap are lost
    p2 = str(tmp_path / "open.dump")
    write_swabian_dump(p2, t[t < a], ch[t < a], gp.meta, extra=_special(2, a))
    assert _read_all(p2, 1 << 16)[2]["overflow_intervals"] == [[int(a), None]]      # never ended


def test_garbage_records_and_garbled_times_are_skipped_whatever_the_chunk(gp, tmp_path):
    """A run of garbage records (unknown type, reserved octet set) is one corrupt region; single
    and paired tags with garbled times (far in the future, or 0) are dropped, and every real tag is
    delivered: a forward-garbled time no longer makes the rest of the pass look as if it went
    backwards."""
    t, ch = gp.t_ps.copy(), gp.channel.copy()
    rec = np.zeros(t.size, TAG_DTYPE)
    rec["time"], rec["channel"] = t, ch
    garble_up = [1000, 5000, 5001, 20000]                 # future times (single, a pair, single)
    rec["time"][garble_up] = [2 ** 62, 2 ** 61, 2 ** 61 + 5, int(t[-1]) + 10 ** 9]
    rec["time"][30000] = 0                                # a past time
    junk = np.frombuffer(np.random.default_rng(3).bytes(16 * 40), TAG_DTYPE).copy()
    junk["type"] = np.where(junk["type"] <= 4, junk["type"] + 5, junk["type"])
    rec = np.concatenate([rec[:50000], junk, rec[50000:]])
    p = str(tmp_path / "garbage.dump")
    rec.tofile(p)
    meta = {"meta_overrides": gp.meta}
    bad = set(garble_up) | {30000}
    want = np.delete(t, sorted(bad))
    outs = [_read_all(p, n, **meta) for n in (13, 4096, 1 << 20)]
    for got_t, got_ch, st in outs:
        np.testing.assert_array_equal(got_t, want)
        np.testing.assert_array_equal(got_ch, np.delete(ch, sorted(bad)))
        assert st["bad_records"] == 40 and st["dropped_spikes"] == 4 and st["dropped_non_monotonic"] == 1
        assert st["corrupt_regions"] == [{"kind": "bad_record", "start": 50000, "stop": 50040}]
    assert decode_capture(p, meta_overrides=gp.meta)["frames"]["good"] >= gp.n_frames - 2


def test_spike_filter_passes_a_non_decreasing_stream_untouched():
    rng = np.random.default_rng(1)
    t = np.sort(rng.integers(2 ** 60, 2 ** 60 + 10 ** 6, 5000))    # beyond float64's exact integers
    t[100:110] = t[100]                                               # ties
    f = SpikeFilter()
    out = [f.push(t[a:a + 333], np.zeros(t[a:a + 333].size, np.int64))[0] for a in range(0, t.size, 333)]
    out.append(f.flush()[0])
    np.testing.assert_array_equal(np.concatenate(out), t)
    assert f.dropped == 0


def test_truncated_last_record_is_listed_and_the_rest_read(gp, tmp_path):
    p = tmp_path / "cut.dump"
    write_swabian_dump(str(p), gp.t_ps[:1000], gp.channel[:1000], gp.meta)
    p.write_bytes(p.read_bytes()[:-7])                           # the last record cut at 9 octets
    t, _, st = _read_all(str(p), 256)
    np.testing.assert_array_equal(t, gp.t_ps[:999])
    assert st["corrupt_regions"] == [{"kind": "truncated_record", "start": 999, "stop": 1000, "octets": 9}]


def test_link_parameters_side_file(gp, tmp_path):
    p = str(tmp_path / "nometa.dump")
    write_swabian_dump(p, gp.t_ps[:10], gp.channel[:10])
    with pytest.raises(CaptureFormatError, match=r"nometa\.dump: no link parameters: write them to .*"
                                                 r"nometa\.dump\.modem\.json or give --param"):
        open_capture(p)
    with open(p + ".modem.json", "w") as fh:
        fh.write("[1, 2]")
    with pytest.raises(CaptureFormatError, match=r"nometa\.dump\.modem\.json: link parameters must be a JSON "
                                                 r"object, got list"):
        open_capture(p)
    with open(p + ".modem.json", "w") as fh:
        json.dump({**gp.meta, "slot_width_ps": -1}, fh)
    with pytest.raises(CaptureFormatError, match="slot_width_ps must be a positive number, got -1"):
        open_capture(p)
    with open_capture(p, {"slot_width_ps": 1000.0}) as cap:            # --param overrides the side file
        assert cap.meta["slot_width_ps"] == 1000.0


def test_negative_falling_edge_channels_deskew(gp, tmp_path):
    """Channel ids as a Time Tagger numbers them (falling edges negative) with a delay table."""
    ch = -(gp.channel.astype(np.int64) + 1)                            # -1 .. -4
    d = {-1: 0, -2: 700, -3: -400, -4: 1500}
    t_raw = gp.t_ps + np.array([d[c] for c in ch.tolist()])
    o = np.argsort(t_raw, kind="stable")
    p = str(tmp_path / "edges.dump")
    write_swabian_dump(p, t_raw[o], ch[o], gp.meta)
    rep = decode_capture(p, meta_overrides={"channel_delays_ps": {str(k): v for k, v in d.items()}})
    assert rep["frames"]["good"] == gp.n_frames
    assert rep["photons"]["per_channel"] == {str(c): int((ch == c).sum()) for c in (-4, -3, -2, -1)}


@pytest.mark.parametrize("step", [1, 3, 8, 9, 500])
def test_spike_filter_same_output_whatever_the_chunk(step):
    rng = np.random.default_rng(step)
    t = np.sort(rng.integers(0, 10 ** 9, 3000))
    t[[10, 400, 401, 2995]] = [2 ** 62, 2 ** 50, 2 ** 50, 2 ** 61]          # garbled, the last near the end
    ch = rng.integers(-4, 4, t.size)
    whole = SpikeFilter()
    w = [whole.push(t, ch), whole.flush()]
    parts = SpikeFilter()
    p = [parts.push(t[a:a + step], ch[a:a + step]) for a in range(0, t.size, step)] + [parts.flush()]
    for k in (0, 1):
        np.testing.assert_array_equal(np.concatenate([x[k] for x in p]), np.concatenate([x[k] for x in w]))
    got = np.concatenate([x[0] for x in w])
    np.testing.assert_array_equal(got, np.delete(t, [10, 400, 401, 2995]))
    assert whole.dropped == parts.dropped == 4
