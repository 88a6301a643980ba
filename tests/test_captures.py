# SPDX-License-Identifier: Apache-2.0
"""The shipped captures: every manifest entry is complete, every capture decodes to exactly the
payload SHA-256 the manifest gives, through decode_capture and through the production CLI
(``modem decode captures/<file> --json``, the README's main command), and the folder stays small."""
import json
import os

import pytest

from modem.cli import main
from modem.offline import decode_capture

CAPTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "captures")
MANIFEST = json.load(open(os.path.join(CAPTURES, "manifest.json")))
ENTRIES = sorted(MANIFEST["captures"].items())


def test_manifest_is_complete():
    assert MANIFEST["version"] == 1 and "non-idle CCSDS space packet" in MANIFEST["payload_definition"]
    assert MANIFEST["default"] in MANIFEST["captures"]
    formats = {e["format"] for _, e in ENTRIES}
    assert formats == {"hdf5", "ptu-t2", "sigmf"}
    for name, e in ENTRIES:
        for f in e["files"]:
            assert os.path.isfile(os.path.join(CAPTURES, f)), f
        assert len(e["payload_sha256"]) == 64 and e["packets"] > 0
        assert e["link"]["chain"] in ("scppm", "dpsk")
    orders = sorted(e["link"].get("M", 0) for _, e in ENTRIES if e["kind"] == "timetags")
    assert orders[0] == 16 and orders[-1] == 128
    assert any(e["link"].get("divider", 1) > 1 and e["generator"]["scint_index"] > 0
               for _, e in ENTRIES if e["kind"] == "samples")           # burst mode and fading


def test_captures_folder_is_small():
    total = sum(os.path.getsize(os.path.join(CAPTURES, f)) for f in os.listdir(CAPTURES))
    assert total < 5_000_000


@pytest.mark.parametrize("name,entry", ENTRIES, ids=[n for n, _ in ENTRIES])
def test_capture_decodes_to_manifest_payload(name, entry):
    rep = decode_capture(os.path.join(CAPTURES, name))
    assert rep["packets"]["payload_sha256"] == entry["payload_sha256"]
    assert rep["packets"]["count"] == entry["packets"]
    assert rep["format"] == entry["format"]
    assert rep["manifest"]["match"] is True
    # the frame counts the manifest records: a decoder change that loses (or gains) frames on a
    # shipped pass shows here, and the manifest is refreshed with it
    assert (rep["frames"]["good"], rep["frames"]["bad"]) == (entry["decoded"]["frames_good"],
                                                             entry["decoded"]["frames_bad"])


def test_readme_main_command(capsys):
    default = os.path.join(CAPTURES, MANIFEST["default"])
    assert main(["decode", default, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["packets"]["payload_sha256"] == MANIFEST["captures"][MANIFEST["default"]]["payload_sha256"]
    assert main(["decode", default, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"payload sha256 {rep['packets']['payload_sha256']}" in out and " good, 0 bad" in out
    assert "(matches " in out.split("payload sha256")[1].splitlines()[0] and "manifest.json" in out


def test_decode_reports_a_payload_that_differs_from_the_manifest(tmp_path, capsys):
    """A capture listed in a manifest that decodes to another payload: exit status 3, named."""
    import shutil
    default = MANIFEST["default"]
    shutil.copy(os.path.join(CAPTURES, default), tmp_path / default)
    bad = json.loads(json.dumps(MANIFEST))
    bad["captures"][default]["payload_sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(bad))
    assert main(["decode", str(tmp_path / default), "--no-progress"]) == 3
    cap = capsys.readouterr()
    assert "DIFFERS" in cap.out and "differs from" in cap.err
