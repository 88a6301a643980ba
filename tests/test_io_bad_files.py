# SPDX-License-Identifier: Apache-2.0
"""Bad capture files: each problem gives one error line naming the file and the problem (the CLI
exits 2 without a traceback), and a pass with a corrupt region still yields every frame outside it."""
import csv
import json
import os
import shutil
import struct

import numpy as np
import pytest

from modem.cli import main
from modem.errors import CaptureFormatError
from modem.io import open_capture, write_ptu_t2, write_sigmf, write_timetags_hdf5
from modem.io.generate import SCPPMPassSpec, generate_scppm_pass, write_pass
from modem.offline import decode_capture

h5py = pytest.importorskip("h5py")
ptufile = pytest.importorskip("ptufile")

META = {"chain": "scppm", "M": 16, "rate": "1/2", "slot_width_ps": 1000.0, "ns": 2.4, "nb": 0.02,
        "frame_len": 1115, "scid": 66, "vcid": 1}
T = np.arange(1000, dtype=np.int64) * 997 + 5
CH = (np.arange(1000) % 3).astype(np.int16)


def _cli_error(capsys, path) -> str:
    rc = main(["decode", str(path), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"modem: error: {os.path.splitext(str(path))[0]}")   # names the file
    return lines[0]


def _ptu(tmp_path, name="a.ptu", meta=META):
    p = tmp_path / name
    write_ptu_t2(p, T, CH, meta)
    return p


def _patch_tag(path, ident: str, value: int):
    b = bytearray(path.read_bytes())
    i = b.find(ident.encode())
    b[i + 40:i + 48] = struct.pack("<q", value)
    path.write_bytes(bytes(b))


# ---------------------------------------------------------------------------------------------
def test_nonexistent_path_and_directory(tmp_path, capsys):
    line = _cli_error(capsys, tmp_path / "nope.h5")
    assert line.endswith("nope.h5: no such file")
    assert "is a directory" in _cli_error(capsys, tmp_path)


@pytest.mark.parametrize("name,problem", [
    ("x.ptu", r"wrong magic for a PTU file: expected b'PQTTTR\\x00\\x00', found b'GARBAGE!'"),
    ("x.h5", r"wrong magic for a HDF5 file"),
    ("x.bin", r"unknown capture format"),
])
def test_wrong_magic(tmp_path, capsys, name, problem):
    p = tmp_path / name
    p.write_bytes(b"GARBAGE!" + bytes(100))
    with pytest.raises(CaptureFormatError, match=problem):
        open_capture(p)
    assert "wrong magic" in _cli_error(capsys, p) or name == "x.bin"


def test_truncated_files(tmp_path, capsys):
    p = _ptu(tmp_path)
    full = p.read_bytes()
    p.write_bytes(full[:-1000])                                         # records cut
    assert "truncated: header says" in _cli_error(capsys, p)
    p.write_bytes(full[:300])                                           # header cut
    assert "not a readable PTU file" in _cli_error(capsys, p)
    p.write_bytes(full[:5])
    assert "truncated: 5 octets" in _cli_error(capsys, p)
    h = tmp_path / "a.h5"
    write_timetags_hdf5(h, T, CH, META)
    b = h.read_bytes()
    h.write_bytes(b[: len(b) // 2])
    assert "not a readable HDF5 file, truncated or corrupt" in _cli_error(capsys, h)
    m = write_sigmf(tmp_path / "s", np.zeros(1000, np.float32), {"chain": "dpsk"}, 1e9)
    d = tmp_path / "s.sigmf-data"
    d.write_bytes(d.read_bytes()[:-2])
    line = _cli_error(capsys, m)
    assert "s.sigmf-data: truncated: 3998 octets is not a whole number of rf32_le samples" in line


def test_metadata_contradicting_data(tmp_path, capsys):
    h = tmp_path / "a.h5"
    write_timetags_hdf5(h, T, CH, META)
    with h5py.File(h, "r+") as f:
        f.attrs["n_photons"] = 999
    assert "metadata contradicts data: n_photons attribute is 999, /photon_data/timestamps holds 1000" \
        in _cli_error(capsys, h)
    with h5py.File(h, "r+") as f:
        f.attrs["n_photons"] = 1000
        del f["photon_data/detectors"]
        f["photon_data/detectors"] = CH[:10]
    assert "1000 timestamps but 10 detector ids" in _cli_error(capsys, h)
    p = _ptu(tmp_path)
    _patch_tag(p, "Measurement_Mode", 3)
    assert "Measurement_Mode 3 contradicts record type 0x00010207 (T2)" in _cli_error(capsys, p)
    p = _ptu(tmp_path, "b.ptu")
    with open(p, "ab") as fh:
        fh.write(bytes(4000))
    assert "metadata contradicts data: header says" in _cli_error(capsys, p)
    p = _ptu(tmp_path, "c.ptu", dict(META, M=17))                      # impossible link parameter
    assert "bad link parameters: SCPPMCode: M must be one of" in _cli_error(capsys, p)
    m = write_sigmf(tmp_path / "s", np.zeros(100, np.float32), {"chain": "dpsk"}, 1e9)
    doc = json.loads(open(m).read())
    doc["global"]["modem:n_samples"] = 200
    with open(m, "w") as fh:
        json.dump(doc, fh)
    assert "metadata contradicts data: modem:n_samples=200, the data file holds 100" in _cli_error(capsys, m)
    doc["global"]["modem:n_samples"] = 100
    doc["global"]["core:sample_rate"] = -5.0                          # fails the SigMF schema
    with open(m, "w") as fh:
        json.dump(doc, fh)
    assert "SigMF metadata fails validation: -5.0 is less than or equal to the minimum of 0" in _cli_error(capsys, m)


def test_unknown_datatype(tmp_path, capsys):
    m = write_sigmf(tmp_path / "s", np.zeros(100, np.float32), {"chain": "dpsk"}, 1e9)
    doc = json.loads(open(m).read())
    doc["global"]["core:datatype"] = "cf32_le"
    with open(m, "w") as fh:
        json.dump(doc, fh)
    assert "unknown datatype core:datatype='cf32_le'" in _cli_error(capsys, m)
    h = tmp_path / "a.h5"
    write_timetags_hdf5(h, T, CH, META)
    with h5py.File(h, "r+") as f:
        del f["photon_data/timestamps"]
        f["photon_data/timestamps"] = T.astype(np.float64)
    assert "unknown datatype: /photon_data/timestamps must be 1-D integer, got float64" in _cli_error(capsys, h)
    p = _ptu(tmp_path)
    _patch_tag(p, "TTResultFormat_TTTRRecType", 0x00010299)
    assert "unknown TTTR record type 66201 (datatype not supported)" in _cli_error(capsys, p)


def test_missing_link_parameters_can_be_given(tmp_path, capsys):
    p = tmp_path / "foreign.ptu"
    write_ptu_t2(p, T, CH, None)                                       # e.g. recorded by PicoQuant software
    assert "no link parameters (tag Modem_LinkParams absent)" in _cli_error(capsys, p)
    params = [f"--param={k}={json.dumps(v)}" for k, v in META.items()]
    assert main(["decode", str(p), "--no-progress", "--json"] + params) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["meta"]["M"] == 16 and rep["frames"]["good"] == 0 and rep["photons"]["tags"] == T.size


# ---------------------------------------------------------------------------------------------
# corrupt regions: every frame outside the region (and the receiver's re-acquisition) still comes out

@pytest.fixture(scope="module")
def gen_pass(tmp_path_factory):
    d = tmp_path_factory.mktemp("corrupt")
    g = generate_scppm_pass(SCPPMPassSpec(n_packets=40, seed=7, lead_in=4, cloud_ms=0.0))
    write_pass(g, d / "c.ptu")
    write_pass(g, d / "c.h5")
    return d, g, _frames(d / "c.ptu", d / "clean")


def _frames(path, out):
    """{frame data: t_ps} of the good frames of a decode, and the report."""
    rep = decode_capture(path, out_dir=out)
    rows = [r for r in csv.DictReader(open(os.path.join(out, "frames.csv"))) if r["valid"] == "1"]
    blob = open(os.path.join(out, "frames.bin"), "rb").read()
    L = rep["meta"]["frame_len"]
    assert len(blob) == L * len(rows)
    return {blob[i * L:(i + 1) * L]: float(r["t_ps"]) for i, r in enumerate(rows)}, rep


def _check_outside(clean, got, t_a, t_b, cw_ps):
    assert set(got) <= set(clean)                                       # nothing corrupted passes as good
    # the codeword sync emits a codeword once the next CSM is seen, and after the region the slot
    # clock re-acquires and the frame synchroniser spends two markers in SEARCH/CHECK: margins
    need = [d for d, t in clean.items() if t < t_a - 3 * cw_ps or t > t_b + 5 * cw_ps]
    missing = [clean[d] for d in need if d not in got]
    assert not missing, (missing, t_a, t_b)
    assert len(need) >= len(clean) - 9


def test_ptu_with_garbage_in_the_data_block(gen_pass, tmp_path):
    d, g, (clean, rep0) = gen_pass
    assert rep0["packets"]["payload_sha256"] == g.payload_sha256
    p = tmp_path / "c.ptu"
    shutil.copy(d / "c.ptu", p)
    with open_capture(p) as cap:
        off, n = cap._offset, cap.n_records
    k = n // 2
    with ptufile.PtuFile(p) as f:                                       # times of the records overwritten
        rec_t = f.decode_records()["time"].astype(np.int64)
    with open(p, "r+b") as fh:
        fh.seek(off + 4 * k)
        fh.write(np.random.default_rng(1).bytes(8192))                 # 2048 records of garbage
    got, rep = _frames(p, tmp_path / "o")
    _check_outside(clean, got, rec_t[k], rec_t[k + 2048], 75920 * 1000.0)
    assert rep["gaps"]["dropped_non_monotonic"] > 0 or rep["gaps"]["corrupt_regions"]
    assert "loss_of_signal" in [e["kind"] for e in rep["sync_events"]]


def test_hdf5_with_a_corrupt_chunk(gen_pass, tmp_path):
    d, g, (clean, _) = gen_pass
    p = tmp_path / "c.h5"
    shutil.copy(d / "c.h5", p)
    with h5py.File(p) as f:
        ds = f["photon_data/timestamps"]
        j = ds.id.get_num_chunks() // 2
        info = ds.id.get_chunk_info(j)
        c = ds.chunks[0]
    with open(p, "r+b") as fh:                                          # garbage inside one data chunk
        fh.seek(info.byte_offset + info.size // 3)
        fh.write(np.random.default_rng(2).bytes(512))
    got, rep = _frames(p, tmp_path / "o")
    assert rep["gaps"]["corrupt_regions"] == [{"dataset": "/photon_data/timestamps", "start": j * c,
                                               "stop": (j + 1) * c}]
    _check_outside(clean, got, g.t_ps[j * c], g.t_ps[(j + 1) * c], 75920 * 1000.0)
