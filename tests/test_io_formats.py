# SPDX-License-Identifier: Apache-2.0
"""Capture formats: PTU T2 writer read back by ptufile, chunked PTU T2/T3 reading equal to
ptufile's one-shot decoding, the HDF5 layout round trip, SigMF recordings that pass the sigmf
package's validation, the optional .ttbin reader, and format detection."""
import json
import struct

import numpy as np
import pytest

from modem.errors import CaptureFormatError
from modem.io import (HDF5Capture, PTUCapture, detect_format, open_capture, write_ptu_t2,
                      write_sigmf, write_timetags_hdf5)
from modem.io.ptu import META_TAG, T2_WRAP, encode_t2_generic

ptufile = pytest.importorskip("ptufile")

META = {"chain": "scppm", "M": 16, "rate": "1/2", "slot_width_ps": 1000.0, "ns": 2.4, "nb": 0.02,
        "frame_len": 1115, "scid": 66, "vcid": 1, "fecf": True, "ocf": False, "max_iter": 16}


def _tags(n=40000, seed=0):
    """Time-sorted tags with long silences (multi-wrap overflows), 5 channels, ties."""
    rng = np.random.default_rng(seed)
    dt = rng.exponential(20000.0, n).astype(np.int64)
    dt[rng.integers(0, n, 6)] += np.array([3, 1, 70, 2, 1000, 5]) * T2_WRAP + 17   # gaps of 1..1000 wraps
    dt[rng.integers(0, n, 50)] = 0                                                   # simultaneous tags
    t = np.cumsum(dt) + 123
    return t, rng.integers(0, 5, n).astype(np.int16)


def _all(cap, n):
    return np.concatenate(list(cap.chunks(n)))


def test_ptu_t2_writer_read_back_by_ptufile(tmp_path):
    t, ch = _tags()
    p = tmp_path / "x.ptu"
    n_rec = write_ptu_t2(p, t, ch, META, chunk=7777)          # chunked writing continues the overflows
    with ptufile.PtuFile(p) as f:
        assert f.record_type == ptufile.PtuRecordType.GenericT2 and not f.is_t3
        assert f.number_records == n_rec and f.global_resolution == 1e-12
        d = f.decode_records()
        ph = d[d["channel"] >= 0]
        np.testing.assert_array_equal(ph["time"].astype(np.int64), t)
        np.testing.assert_array_equal(ph["channel"], ch)
        assert json.loads(f.tags[META_TAG]) == META
    assert n_rec > t.size                                        # overflow records were needed
    # one-shot encoding gives the same records as the chunked writer
    with PTUCapture(p) as cap:
        rec = np.fromfile(p, dtype="<u4", offset=cap._offset)
    np.testing.assert_array_equal(rec, encode_t2_generic(t, ch))


@pytest.mark.parametrize("n", [1, 333, 4096, 10 ** 6])
def test_ptu_t2_chunked_reading_equals_ptufile(tmp_path, n):
    t, ch = _tags(6000 if n == 1 else 40000, seed=1)
    p = tmp_path / "x.ptu"
    write_ptu_t2(p, t, ch, META)
    with open_capture(p) as cap:
        assert cap.format == "ptu-t2" and cap.kind == "timetags" and cap.meta == META
        got = _all(cap, n)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, t)
        assert cap.stats["per_channel"] == {c: int((ch == c).sum()) for c in range(5)}
        assert cap.stats["dropped_non_monotonic"] == 0


def test_ptu_t3_read_through_ptufile(tmp_path):
    """T3 (sync count + TCSPC delay) written by ptufile's own writer, read in chunks."""
    rng = np.random.default_rng(2)
    img = rng.integers(0, 3, size=(2, 8, 8, 1, 32), dtype=np.uint16)   # frames, y, x, channel, bins
    p = tmp_path / "t3.ptu"
    ptufile.imwrite(p, img, global_resolution=1e-9, tcspc_resolution=25e-12, pixel_time=2e-7,
                    tags={META_TAG: json.dumps(META)})
    with ptufile.PtuFile(p) as f:
        d = f.decode_records()
        ph = d[d["channel"] >= 0]
        want = np.floor(ph["time"].astype(np.int64) * 1000.0 + ph["dtime"] * 25.0).astype(np.int64)
    assert want.size == int(img.sum())
    with open_capture(p) as cap:
        assert cap.format == "ptu-t3"
        got = _all(cap, 97)
    # 32 bins of 25 ps fit in the 1 ns sync period, so the tags are time-ordered as recorded
    np.testing.assert_array_equal(got, want)
    assert cap.stats["dropped_non_monotonic"] == 0 and cap.stats["markers"] > 0


def test_hdf5_round_trip_and_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    t, ch = _tags(50000, seed=3)
    p = tmp_path / "x.h5"
    write_timetags_hdf5(p, t, ch, META)
    with h5py.File(p) as f:                                       # Photon-HDF5-like photon_data
        assert f["photon_data/timestamps"].dtype == np.int64
        assert f["photon_data/timestamps_specs/timestamps_unit"][()] == 1e-12
        assert f["photon_data/detectors"].shape == t.shape
        assert f["modem_link"].attrs["M"] == 16 and f.attrs["n_photons"] == t.size
    for n in (1000, 16384, 20000, 10 ** 6):
        with open_capture(p) as cap:
            assert isinstance(cap, HDF5Capture) and cap.meta == META
            sizes = [c.size for c in cap.chunks(n)]
            assert max(sizes) <= n and sum(sizes) == t.size
        with open_capture(p) as cap:
            np.testing.assert_array_equal(_all(cap, n), t)
            assert sum(cap.stats["per_channel"].values()) == t.size


def test_sigmf_written_files_pass_validation_and_read_back(tmp_path):
    pytest.importorskip("sigmf")
    from sigmf.sigmffile import fromfile
    rng = np.random.default_rng(4)
    x = rng.normal(size=10000).astype(np.float32)
    link = {"chain": "dpsk", "frame": "short", "rate": "1/2", "frame_len": 256, "scid": 66, "ppb": 20.0,
            "divider": 4, "adc_bits": None}
    meta_path = write_sigmf(tmp_path / "rec", x, link, 1e9, annotations=[(100, 256, {"core:label": "burst"})])
    f = fromfile(meta_path)                                           # the sigmf package reads ...
    f.validate()                                                      # ... and validates it
    g = f.get_global_info()
    assert {"name": "modem", "version": "1.0.0", "optional": False} in g["core:extensions"]
    assert g["modem:ppb"] == 20.0 and g["core:datatype"] == "rf32_le"
    with open_capture(tmp_path / "rec.sigmf-data") as cap:           # either file of the pair
        assert cap.kind == "samples" and cap.meta["chain"] == "dpsk" and cap.meta["divider"] == 4
        got = _all(cap, 777)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, x)
    # ADC codes stored as ri8 with the LSB in the modem namespace, scaled back on reading
    codes = rng.integers(-128, 128, 5000)
    meta_path = write_sigmf(tmp_path / "adc", codes * 0.25, link, 1e9, adc_lsb=0.25)
    fromfile(meta_path).validate()
    with open_capture(meta_path) as cap:
        assert json.load(open(meta_path))["global"]["core:datatype"] == "ri8"
        np.testing.assert_array_equal(_all(cap, 999), (codes * 0.25).astype(np.float32))


def test_ttbin_side_file_checked_before_the_vendor_module(tmp_path):
    """The link parameters of a .ttbin (side file) are checked first, with or without TimeTagger:
    none, not JSON, or not a JSON object is an error naming the file."""
    p = tmp_path / "pass.ttbin"
    p.write_bytes(b"\0" * 64)
    with pytest.raises(CaptureFormatError, match=r"pass\.ttbin: no link parameters"):
        open_capture(p)
    side = tmp_path / "pass.ttbin.modem.json"
    side.write_text("[1, 2]")
    with pytest.raises(CaptureFormatError, match=r"pass\.ttbin\.modem\.json: link parameters must be a JSON object, got list"):
        open_capture(p)
    side.write_text("{")
    with pytest.raises(CaptureFormatError, match=r"modem\.json: link parameters are not valid JSON"):
        open_capture(p)


def test_ttbin_needs_the_vendor_module(tmp_path):
    from modem.board.emulator import SimulatedLink
    p = tmp_path / "pass.ttbin"
    p.write_bytes(b"\0" * 64)
    (tmp_path / "pass.ttbin.modem.json").write_text(json.dumps(SimulatedLink().meta))
    try:
        import TimeTagger  # noqa: F401
    except ImportError:
        with pytest.raises(CaptureFormatError, match=r"pass\.ttbin: reading \.ttbin needs .*TimeTagger"):
            open_capture(p)
    else:  # pragma: no cover - only where Swabian's software is installed
        pytest.skip("TimeTagger installed: reading is covered by test_ttbin_with_vendor_module")


def test_ttbin_with_vendor_module(tmp_path):
    tt = pytest.importorskip("TimeTagger")
    # a virtual tagger records test-signal tags to .ttbin, then the reader streams them back
    tagger = tt.createTimeTaggerVirtual()
    p = str(tmp_path / "v.ttbin")
    with open(p + ".modem.json", "w") as fh:
        json.dump(META, fh)
    tagger.setTestSignal([1, 2], True)
    fw = tt.FileWriter(tagger, p, [1, 2])
    tagger.sync()
    fw.stop()
    with open_capture(p) as cap:
        t = _all(cap, 1000)
    assert t.size and np.all(np.diff(t) >= 0)


def test_detect_format(tmp_path):
    t, ch = _tags(100)
    write_ptu_t2(tmp_path / "a.dat", t, ch, META)                   # magic wins over the extension
    assert detect_format(tmp_path / "a.dat") == "ptu"
    write_timetags_hdf5(tmp_path / "b.bin", t, ch, META)
    assert detect_format(tmp_path / "b.bin") == "hdf5"
    with pytest.raises(CaptureFormatError, match="no such file"):
        detect_format(tmp_path / "c.sigmf-meta")
    with open_capture(tmp_path / "a.dat") as cap:
        assert isinstance(cap, PTUCapture)


def test_ptu_large_overflow_counts_from_hardware(tmp_path):
    """A HydraHarp-V2/Generic overflow record may carry any count up to 2**25-1 (PicoQuant's format);
    the reader applies the full count (ptufile 2026.2.6 alone would take it modulo 128)."""
    p = tmp_path / "hw.ptu"
    write_ptu_t2(p, np.array([5], np.int64), np.array([0], np.int16), META)
    with PTUCapture(p) as cap:
        off = cap._offset
    head = bytearray(p.read_bytes()[:off])
    recs = np.array([7, (1 << 31) | (63 << 25) | 1000, (2 << 25) | 11, (1 << 31) | (63 << 25) | 0, (1 << 25) | 3],
                    dtype="<u4")                     # photon, +1000 wraps, photon, +1 wrap (count 0), photon
    i = head.find(b"TTResult_NumberOfRecords") + 40
    head[i:i + 8] = struct.pack("<q", recs.size)
    p.write_bytes(bytes(head) + recs.tobytes())
    with open_capture(p) as cap:
        got = _all(cap, 2)
        assert cap.stats["overflows"] == 2 and cap.stats["per_channel"] == {0: 1, 2: 1, 1: 1}
    np.testing.assert_array_equal(got, [7, 1000 * T2_WRAP + 11, 1001 * T2_WRAP + 3])
