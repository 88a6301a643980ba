# SPDX-License-Identifier: Apache-2.0
"""Adversarial checks of the capture readers: every PTU record type decoded chunk by chunk equals a
record-by-record reference of PicoQuant's published rules (sync records are not photons), corrupt
regions are reported the same whatever the chunk size, differently chunked HDF5 datasets stay
aligned, SigMF header bytes and a contradicting sample rate, ``--plots`` without ``--out``."""
import json
import struct

import numpy as np
import pytest

from modem.errors import CaptureFormatError, ConfigError
from modem.io import open_capture, write_ptu_t2, write_sigmf, write_timetags_hdf5
from modem.io.ptu import PTUCapture

ptufile = pytest.importorskip("ptufile")
h5py = pytest.importorskip("h5py")

META = {"chain": "scppm", "M": 16, "rate": "1/2", "slot_width_ps": 1000.0, "ns": 2.4, "nb": 0.02,
        "frame_len": 1115, "scid": 66, "vcid": 1}

# record type -> (overflow rule, T3, wrap)
RT = {0x00010203: ("ph", False, 210698240), 0x00010204: ("v1", False, 33552000),
      0x01010204: ("v2", False, 1 << 25), 0x00010207: ("v2", False, 1 << 25),
      0x00010303: ("ph", True, 65536), 0x00010304: ("v1", True, 1024),
      0x01010304: ("v2", True, 1024), 0x00010307: ("v2", True, 1024)}
GRES = {False: (4e-12, 4e-12), True: (1e-9, 25e-12)}        # (global resolution, resolution) in s


def _patch(head: bytearray, ident: str, value, fmt="<q"):
    i = head.find(ident.encode()) + 40
    head[i:i + 8] = struct.pack(fmt, value)


def _craft_ptu(path, recs, rectype=0x00010207, meta=META):
    """A PTU file holding exactly the raw records ``recs`` (header from write_ptu_t2, patched)."""
    is_t3 = RT.get(rectype, ("", False))[1]
    write_ptu_t2(path, np.array([5], np.int64), np.array([0], np.int16), meta)
    with PTUCapture(path) as cap:
        off = cap._offset
    head = bytearray(open(path, "rb").read()[:off])
    _patch(head, "TTResult_NumberOfRecords", len(recs))
    _patch(head, "TTResultFormat_TTTRRecType", rectype)
    _patch(head, "Measurement_Mode", 3 if is_t3 else 2)
    _patch(head, "MeasDesc_GlobalResolution", GRES[is_t3][0], "<d")
    _patch(head, "MeasDesc_Resolution", GRES[is_t3][1], "<d")
    open(path, "wb").write(bytes(head) + np.asarray(recs, dtype="<u4").tobytes())


def _reference(recs, rectype):
    """Photon time tags (ps) and channels, record by record, as in PicoQuant's demo readers:
    overflow records advance the time base, markers and (HydraHarp-style T2) sync records
    (special bit, channel 0) carry no photon."""
    rule, t3, wrap = RT[rectype]
    gres, res = (round(x * 1e12) for x in GRES[t3])
    ofl, out, syncs = 0, [], 0
    for r in (int(x) for x in recs):
        if rule == "ph":
            ch = r >> 28
            if ch == 15:
                ofl += wrap if ((r >> 16) if t3 else r) & 0xF == 0 else 0
                continue
            if t3:
                out.append(((ofl + (r & 0xFFFF)) * gres + ((r >> 16) & 0xFFF) * res, ch))
            else:
                out.append(((ofl + (r & 0x0FFFFFFF)) * gres, ch))
            continue
        special, ch = r >> 31, (r >> 25) & 63
        field = r & (0x3FF if t3 else 0x1FFFFFF)
        if special:
            if ch == 63:
                ofl += wrap * (1 if rule == "v1" or field == 0 else field)
            elif ch == 0 and not t3:
                syncs += 1
            continue
        out.append(((ofl + field) * gres + (((r >> 10) & 0x7FFF) * res if t3 else 0), ch))
    return np.array([t for t, _ in out], np.int64), np.array([c for _, c in out], np.int64), syncs


def _records(rectype, n, rng):
    """A valid random record stream: photons on channels 0..3, markers, sync records (T2 of the
    HydraHarp family), overflow records of counts 0, 1, 2 and 200 (V2); time ordered."""
    rule, t3, wrap = RT[rectype]
    kinds = rng.choice(["photon"] * 5 + ["overflow", "marker", "sync"], n)
    recs, seg = [], []

    def close_segment():                          # records between two overflows, time ordered
        hi = wrap if rule != "ph" or not t3 else 65536
        fields = np.sort(rng.choice(np.arange(16, hi), len(seg), replace=False) if t3     # one per sync
                         else rng.integers(16, hi, len(seg)))
        for k, f in zip(seg, fields.tolist()):
            ch, dt = int(rng.integers(0, 4)), 0 if k != "photon" or not t3 else int(rng.integers(0, 40))
            if rule == "ph":
                if k == "marker":
                    recs.append((15 << 28) | (int(rng.integers(1, 16)) << 16) | f if t3
                                else (15 << 28) | (f & ~0xF) | int(rng.integers(1, 16)))
                else:
                    recs.append((ch << 28) | (dt << 16) | f)
            elif k == "marker":
                recs.append((1 << 31) | (int(rng.integers(1, 16)) << 25) | f)
            elif k == "sync" and not t3:
                recs.append((1 << 31) | f)
            else:
                recs.append((ch << 25) | (dt << 10) | f if t3 else (ch << 25) | f)
        seg.clear()

    for k in kinds.tolist():
        if k != "overflow":
            seg.append(k)
            continue
        close_segment()
        if rule == "ph":
            recs.append(15 << 28)
        else:
            recs.append((1 << 31) | (63 << 25) | int(rng.choice([0, 1, 2, 200])))
    close_segment()
    return np.array(recs, dtype=np.uint32)


def _read_chunked(path, n):
    """Every time tag of the capture at ``path`` read ``n`` records at a time, and the reader's stats."""
    with open_capture(path) as cap:
        return np.concatenate(list(cap.chunks(n))), cap.stats


@pytest.mark.parametrize("rectype", sorted(RT), ids=[f"0x{r:08x}" for r in sorted(RT)])
def test_ptu_every_record_type_chunked_equals_reference(tmp_path, rectype):
    rng = np.random.default_rng(rectype & 0xFFFF)
    recs = _records(rectype, 600, rng)
    want_t, want_ch, syncs = _reference(recs, rectype)
    assert np.all(np.diff(want_t) >= 0) and want_t.size > 300
    p = tmp_path / "x.ptu"
    _craft_ptu(p, recs, rectype)
    for n in (1, 2, 7, 64, 10 ** 6):
        got, stats = _read_chunked(p, n)
        np.testing.assert_array_equal(got, want_t, err_msg=f"chunk {n}")
        # (ptufile numbers PicoHarp T3 routing channels from 0: compare the counts per channel)
        assert sorted(stats["per_channel"].values()) == sorted(np.unique(want_ch, return_counts=True)[1].tolist())
        assert stats["records"] == recs.size and stats["dropped_non_monotonic"] == 0
        assert stats.get("syncs", 0) == syncs


def test_ptu_t2_sync_records_are_not_photons(tmp_path):
    """HydraHarp/TimeHarp/MultiHarp T2: a special record on channel 0 is a sync event, not a photon
    of detector 0 (ptufile 2026.2.6 decodes both as channel 0)."""
    p = tmp_path / "s.ptu"
    recs = [(0 << 25) | 100, (1 << 31) | 200, (1 << 31) | (3 << 25) | 300, (2 << 25) | 400]
    _craft_ptu(p, recs, 0x00010207)
    with open_capture(p) as cap:
        got = np.concatenate(list(cap.chunks(10)))
        assert cap.stats["per_channel"] == {0: 1, 2: 1}
        assert cap.stats["syncs"] == 1 and cap.stats["markers"] == 1 and cap.stats["photons"] == 2
    np.testing.assert_array_equal(got, [400, 1600])                  # 4 ps resolution


def test_ptu_time_jumps_reported_the_same_whatever_the_chunk_size(tmp_path):
    """A silence longer than 1 s is a suspected corrupt region: each one is reported once, with the
    record where it lands and its time, the same list for every chunk size."""
    t = np.cumsum(np.full(40, 1000, np.int64))
    t[5:] += 2 * 10 ** 12                                            # 2 s silences, twelve of them
    for k in range(8, 30, 2):
        t[k:] += 2 * 10 ** 12
    p = tmp_path / "j.ptu"
    write_ptu_t2(p, t, np.zeros(t.size, np.int16), META)
    reports = []
    for n in (1, 3, 50, 10 ** 7):
        with open_capture(p) as cap:
            np.testing.assert_array_equal(np.concatenate(list(cap.chunks(n))), t)
            reports.append(cap.stats["corrupt_regions"])
    assert all(r == reports[0] for r in reports[1:]), reports
    assert len(reports[0]) == 12
    assert [r["t_ps"] for r in reports[0]] == [int(t[i]) for i in np.flatnonzero(np.diff(t) > 10 ** 12) + 1]


def _corrupt_h5_chunk(path, name, j):
    with h5py.File(path) as f:
        info = f[name].id.get_chunk_info(j)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 3)
        fh.write(np.random.default_rng(2).bytes(min(256, info.size // 2)))


def test_hdf5_corrupt_region_report_is_chunk_size_invariant(tmp_path):
    n_tags = 5 * 16384
    t = np.cumsum(np.random.default_rng(0).integers(1, 3000, n_tags)).astype(np.int64)
    ch = (np.arange(n_tags) % 4).astype(np.int16)
    p = tmp_path / "c.h5"
    write_timetags_hdf5(p, t, ch, META)
    _corrupt_h5_chunk(p, "photon_data/timestamps", 2)
    want = np.concatenate([t[:2 * 16384], t[3 * 16384:]])
    for n in (1000, 5000, 16384, 40000, 10 ** 6):
        with open_capture(p) as cap:
            np.testing.assert_array_equal(np.concatenate(list(cap.chunks(n))), want, err_msg=f"chunk {n}")
            assert cap.stats["corrupt_regions"] == [{"dataset": "/photon_data/timestamps", "start": 2 * 16384,
                                                     "stop": 3 * 16384}], n
            assert cap.stats["records"] == n_tags


def test_hdf5_datasets_chunked_differently_stay_aligned(tmp_path):
    """A Photon-HDF5-like file from other software: detectors chunked by 1000, timestamps by 4096;
    a corrupt detectors chunk removes exactly its 1000 tags, not a misaligned neighbour's."""
    n_tags = 20000
    t = np.cumsum(np.random.default_rng(1).integers(1, 3000, n_tags)).astype(np.int64)
    ch = (np.arange(n_tags) % 4).astype(np.int16)
    p = tmp_path / "f.h5"
    write_timetags_hdf5(p, t, ch, META)
    with h5py.File(p, "r+") as f:
        for name, data, c in (("timestamps", t, 4096), ("detectors", ch, 1000)):
            del f["photon_data/" + name]
            f["photon_data"].create_dataset(name, data=data, chunks=(c,), fletcher32=True, compression="gzip")
    _corrupt_h5_chunk(p, "photon_data/detectors", 5)
    for n in (999, 4096, 10 ** 6):
        with open_capture(p) as cap:
            got = np.concatenate(list(cap.chunks(n)))
            assert {"dataset": "/photon_data/detectors", "start": 5000, "stop": 6000} in cap.stats["corrupt_regions"]
        np.testing.assert_array_equal(got, np.concatenate([t[:5000], t[6000:]]), err_msg=f"chunk {n}")


def test_sigmf_header_bytes_of_the_capture_segment_are_skipped(tmp_path):
    """``core:header_bytes`` is a field of the capture segment (SigMF schema): that many octets of
    non-sample data precede the samples; they must not be read as samples."""
    x = np.arange(100, dtype=np.float32) + 1
    m = write_sigmf(tmp_path / "h", x, {"chain": "dpsk"}, 1e9)
    d = tmp_path / "h.sigmf-data"
    d.write_bytes(b"HDR-16-OCTETS!!!" + d.read_bytes())
    doc = json.loads(open(m).read())
    doc["captures"][0]["core:header_bytes"] = 16
    open(m, "w").write(json.dumps(doc))
    with open_capture(m) as cap:
        assert cap.n_records == 100
        np.testing.assert_array_equal(np.concatenate(list(cap.chunks(33))), x)
    doc["captures"][0]["core:header_bytes"] = 1000
    open(m, "w").write(json.dumps(doc))
    with pytest.raises(CaptureFormatError, match=r"h\.sigmf-data: truncated: 416 octets, shorter than "
                                                 r"core:header_bytes=1000"):
        open_capture(m)


def test_sigmf_header_bytes_of_a_later_capture_segment_named(tmp_path):
    x = np.arange(100, dtype=np.float32)
    m = write_sigmf(tmp_path / "h", x, {"chain": "dpsk"}, 1e9)
    doc = json.loads(open(m).read())
    doc["captures"].append({"core:sample_start": 50, "core:header_bytes": 8})
    open(m, "w").write(json.dumps(doc))
    with pytest.raises(CaptureFormatError, match=r"h\.sigmf-meta: .*core:header_bytes=8 .*capture segment 1"):
        open_capture(m)


def test_sigmf_sample_rate_contradicting_the_link_is_an_error(tmp_path):
    """The receiver runs at the link's slot_rate_hz * sps; a recording whose core:sample_rate says
    otherwise would be decoded on the wrong time base: an error naming both values."""
    from modem.offline import decode_capture
    link = {"chain": "dpsk", "frame": "short", "rate": "1/2", "frame_len": 256, "scid": 66,
            "slot_rate_hz": 2.88e9, "sps": 4.0}
    m = write_sigmf(tmp_path / "r", np.zeros(4000, np.float32), link, 10e9)
    with pytest.raises(CaptureFormatError, match=r"r\.sigmf-meta: metadata contradicts data: core:sample_rate="
                                                 r"10000000000(\.0)? Hz, the link parameters give "
                                                 r"slot_rate_hz \* sps = 11520000000(\.0)? Hz"):
        decode_capture(m)
    m = write_sigmf(tmp_path / "ok", np.zeros(4000, np.float32), link, 11.52e9)
    assert decode_capture(m)["frames"]["total"] == 0


def test_plots_without_out_dir_fail_before_decoding(tmp_path):
    """``decode_capture(..., plots=True)`` without out_dir is refused at once (the CLI's
    ``modem decode X --plots`` without ``--out``), not after a whole pass has been decoded."""
    from modem.offline import decode_capture
    with pytest.raises(ConfigError, match="plots need out_dir"):
        decode_capture(tmp_path / "does_not_exist.h5", plots=True)


# ---------------------------------------------------------------------------------------------
# bad header fields: an error naming the file and the value, never a bare ValueError / TypeError

def _sigmf_with(tmp_path, key, value, adc=False):
    m = write_sigmf(tmp_path / "b", np.arange(100) * 0.5, {"chain": "dpsk"}, 1e9, adc_lsb=0.5 if adc else None)
    doc = json.loads(open(m).read())
    doc["global"][key] = value
    open(m, "w").write(json.dumps(doc))
    return m


@pytest.mark.parametrize("key,value,problem", [
    ("modem:n_samples", "many", "modem:n_samples must be a non-negative integer, got 'many'"),
    ("modem:adc_lsb", 0, "modem:adc_lsb must be a positive finite number, got 0"),
    ("modem:adc_lsb", -0.5, "modem:adc_lsb must be a positive finite number, got -0.5"),
    ("modem:adc_lsb", "nan", "modem:adc_lsb must be a positive finite number, got 'nan'"),
])
def test_sigmf_bad_global_fields_named(tmp_path, key, value, problem):
    m = _sigmf_with(tmp_path, key, value, adc=key == "modem:adc_lsb")
    with pytest.raises(CaptureFormatError, match=r"b\.sigmf-meta: " + problem.replace("(", r"\(")):
        open_capture(m)


def _h5_with(tmp_path, edit):
    p = tmp_path / "b.h5"
    write_timetags_hdf5(p, np.arange(10) * 1000, np.zeros(10), META)
    with h5py.File(p, "r+") as f:
        edit(f)
    return p


def _set_unit(value):
    def edit(f):
        del f["photon_data/timestamps_specs/timestamps_unit"]
        f["photon_data/timestamps_specs/timestamps_unit"] = value
    return edit


@pytest.mark.parametrize("edit,problem", [
    (lambda f: f.attrs.__setitem__("n_photons", "ten"), "n_photons attribute must be an integer, got 'ten'"),
    (_set_unit("ps"), "timestamps_unit must be a number of seconds, got b'ps'"),
    (_set_unit(np.array([1e-12, 2e-12])),
     r"timestamps_unit must be a number of seconds, got array\(\[1.e-12, 2.e-12\]\)"),
], ids=["n_photons", "unit-string", "unit-array"])
def test_hdf5_bad_attributes_named(tmp_path, edit, problem):
    with pytest.raises(CaptureFormatError, match=r"b\.h5: " + problem):
        open_capture(_h5_with(tmp_path, edit))


def test_bad_receiver_parameter_is_a_capture_error_through_the_cli(tmp_path, capsys):
    """A link parameter only the receiver reads (max_iter) with a bad value: exit status 2, one
    line naming the file, no traceback."""
    from modem.cli import main
    p = _h5_with(tmp_path, lambda f: f["modem_link"].attrs.__setitem__("max_iter", "x"))
    assert main(["decode", str(p), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "b.h5: bad link parameters for the receiver" in err[0] and "'x'" in err[0]


def test_ptu_negative_record_count_named(tmp_path):
    p = tmp_path / "n.ptu"
    _craft_ptu(p, [(0 << 25) | 100])
    head = bytearray(p.read_bytes())
    _patch(head, "TTResult_NumberOfRecords", -3)
    p.write_bytes(bytes(head))
    with pytest.raises(CaptureFormatError, match=r"n\.ptu: TTResult_NumberOfRecords is -3, not a record count"):
        open_capture(p)


def test_packet_left_incomplete_at_the_end_of_a_pass_is_counted(tmp_path):
    """A recording that stops in the middle of a packet (the frame carrying its end never came):
    the octets of the packet begun in the last good frame are lost, and the report counts them."""
    from modem.io.generate import SCPPMPassSpec, generate_scppm_pass
    from modem.offline import decode_capture
    g = generate_scppm_pass(SCPPMPassSpec(n_packets=12, seed=3, lead_in=4, cloud_ms=0.0, tail=0))
    k = int(g.t_ps.size * 0.7)                                       # the recording stops here
    p = tmp_path / "cut.h5"
    write_timetags_hdf5(p, g.t_ps[:k], g.channel[:k], g.meta)
    rep = decode_capture(p)
    pk = rep["packets"]
    assert rep["frames"]["good"] == 5 and pk["count"] == 2
    assert pk["incomplete_at_end_octets"] > 0
    assert pk["dropped_events"] == 1 and pk["dropped_octets"] == pk["incomplete_at_end_octets"]
    full = tmp_path / "full.h5"
    write_timetags_hdf5(full, g.t_ps, g.channel, g.meta)
    rep = decode_capture(full)
    assert rep["packets"]["count"] == 12 and rep["packets"]["incomplete_at_end_octets"] == 0
    assert rep["packets"]["dropped_events"] == 0


def test_unwritable_out_dir_is_an_error_naming_it(tmp_path, capsys):
    """``--out`` naming an existing file: exit status 2 with one line naming it (was a traceback);
    in a Dask batch each pass comes back with that error instead of the batch failing."""
    import os
    from modem.cli import main
    from modem.offline import decode_many
    default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "captures",
                           "snspd16_pass.h5")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["decode", default, "--out", str(blocker), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"output folder {blocker}" in err[0] and "cannot be written" in err[0], err
    rep, = decode_many([default], out_dir=str(blocker), n_workers=1)
    assert "error" in rep and "cannot be written" in rep["error"]


@pytest.mark.parametrize("doc", [{"captures": ["c.h5"]}, {"captures": {"c.h5": "7b3a"}}, [1, 2]],
                         ids=["captures-list", "entry-string", "top-list"])
def test_malformed_manifest_beside_a_capture_never_spoils_the_decode(tmp_path, doc):
    """manifest_check's promise: an unreadable manifest is reported in the result, never raised
    (the decode of the whole pass is already done when it is read)."""
    from modem.offline import decode_capture
    write_timetags_hdf5(tmp_path / "c.h5", np.arange(100) * 1000, np.zeros(100), META)
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    rep = decode_capture(tmp_path / "c.h5")
    assert rep["photons"]["tags"] == 100
    assert rep["manifest"]["match"] is None and "unreadable manifest" in rep["manifest"]["error"]


@pytest.mark.parametrize("extra", [b"\x01\x02\x03", np.array([300], "<u4").tobytes()], ids=["3-octets", "1-record"])
def test_ptu_octets_after_the_declared_records_are_reported(tmp_path, extra):
    """Up to 4 octets past TTResult_NumberOfRecords are tolerated (more are an error), but never
    dropped unseen: they are listed as a corrupt region (and so in the report's gaps)."""
    p = tmp_path / "x.ptu"
    _craft_ptu(p, [(0 << 25) | 100, (0 << 25) | 200])
    p.write_bytes(p.read_bytes() + extra)
    with open_capture(p) as cap:
        np.testing.assert_array_equal(np.concatenate(list(cap.chunks(10))), [400, 800])
        assert cap.stats["corrupt_regions"] == [{"kind": "trailing_octets", "record": 2, "octets": len(extra)}]


@pytest.mark.parametrize("rectype", [0x00010303, 0x00010304, 0x00010307])
def test_ptu_t3_photons_of_one_sync_period_in_any_channel_order_are_kept(tmp_path, rectype):
    """T3 records of one sync period come as each channel delivers them, not sorted by TCSPC delay
    (here channel 1's photon of a period before channel 0's earlier one). The reader keeps every
    photon, in time order, whatever the chunk size (they were dropped as non-monotonic before);
    a record more than two sync periods behind a previous one (garbage) is still dropped, counted."""
    rule = RT[rectype][0]

    def rec(ch, dtime, nsync):
        if rule == "ph":
            return (ch << 28) | (dtime << 16) | nsync
        return (ch << 25) | (dtime << 10) | nsync

    recs, want = [], []
    for k in range(1, 300):
        nsync = (3 * k) % 1000 + 1 if rule != "ph" else 3 * k   # stays below the 1024 wrap (no overflow)
        if rule != "ph" and 3 * k >= 1000:
            break
        hi, lo = 30 + k % 9, 2 + k % 5                          # TCSPC bins (25 ps), inside the 1 ns period
        recs += [rec(1 + k % 2, hi, nsync), rec(k % 2, lo, nsync)]
        want += [nsync * 1000 + lo * 25, nsync * 1000 + hi * 25]
    late = rec(0, 0, 3 * 50 - 3)                                  # 3 periods behind the record before it
    recs.insert(2 * 50, late)
    p = tmp_path / "t3.ptu"
    _craft_ptu(p, recs, rectype)
    for n in (1, 2, 7, 64, 10 ** 6):
        got, stats = _read_chunked(p, n)
        np.testing.assert_array_equal(got, np.array(want, np.int64), err_msg=f"chunk {n}")
        assert stats["dropped_non_monotonic"] == 1 and stats["photons"] == len(want)


def test_reorder_window_same_output_in_any_chunking():
    from modem.io.base import ReorderWindow
    rng = np.random.default_rng(8)
    t = np.sort(rng.integers(0, 10 ** 7, 5000)) + rng.integers(0, 400, 5000)   # up to 400 ps out of order
    t[[100, 2000]] -= 5000                                                        # two garbage tags
    idx = np.arange(t.size)
    outs = []
    for cuts in ([], [1, 2, 3], list(range(0, 5000, 7)), sorted(rng.integers(0, 5000, 40).tolist())):
        w = ReorderWindow(400)
        parts = [w.push(a, b) for a, b in zip(np.split(t, cuts), np.split(idx, cuts))] + [w.flush()]
        got_t = np.concatenate([p[0] for p in parts if p])
        got_i = np.concatenate([p[1] for p in parts if p])
        assert np.all(np.diff(got_t) >= 0) and w.dropped == 2
        outs.append((got_t.tolist(), got_i.tolist()))
    assert all(o == outs[0] for o in outs)
    assert sorted(set(range(t.size)) - set(outs[0][1])) == [100, 2000]
    np.testing.assert_array_equal(outs[0][0], t[outs[0][1]])
