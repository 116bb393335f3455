"""Every transcript under tests/data/transcripts/ replayed through the parsers, the doctor's reading of them and
the suites' invariant checks: what was read when the transcript was captured must be read again, and the suites,
given the same capture as baseline and post, must find nothing changed (docs/probes.md, "Contributing a
transcript").
The twin-* folders are the twin's own output (`patchgate capture --lab twin`); a real lab's transcript joins them
by being dropped in the folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from patchgate_pytest.offline import evaluate_transcript
from patchgate.doctor.transcript import HOST_PLACEHOLDER, META, replay

DATA = Path(__file__).resolve().parents[1] / "data" / "transcripts"
TRANSCRIPTS = sorted(p for p in DATA.iterdir() if (p / META).is_file())
PATCHGATE = str(Path(sys.executable).with_name("patchgate"))


def test_the_twin_transcripts_are_shipped() -> None:
    names = {p.name for p in TRANSCRIPTS}
    assert {"twin-ws2025-dc-hotpatch-oct2025", "twin-ws2025-dc-wsus-oct2025"} <= names
    for folder in TRANSCRIPTS:
        if folder.name.startswith("twin-"):
            assert json.loads((folder / META).read_text())["source"] == "twin", folder.name


@pytest.mark.parametrize("folder", TRANSCRIPTS, ids=[p.name for p in TRANSCRIPTS])
def test_transcript_replays_as_it_was_read(folder: Path) -> None:
    assert replay(folder) == []


@pytest.mark.parametrize("folder", TRANSCRIPTS, ids=[p.name for p in TRANSCRIPTS])
def test_the_suites_find_nothing_changed_in_a_transcript(folder: Path) -> None:
    outcomes = evaluate_transcript(folder)
    failed = {invariant: o["detail"] for invariant, o in outcomes.items() if o["status"] == "failed"}
    assert not failed, failed
    judged = {invariant for invariant, o in outcomes.items() if o["status"] == "passed"}
    assert {"services.auto_start_running", "services.configuration", "firewall.rules", "firewall.profiles"} <= \
        judged, outcomes  # every role's posture checks were evaluated, not skipped


def test_a_renamed_property_fails_the_suites_replay(tmp_path: Path) -> None:
    copy = tmp_path / "renamed"
    shutil.copytree(DATA / "twin-ws2025-dc-hotpatch-oct2025", copy)
    assert evaluate_transcript(copy)["hotpatch.enrollment"]["status"] == "passed"
    hotpatch = copy / "hotpatch.json"
    hotpatch.write_text(hotpatch.read_text().replace('"HotPatchTableSize"', '"HotPatchTableBytes"'))
    outcome = evaluate_transcript(copy)["hotpatch.enrollment"]
    assert outcome["status"] == "failed" and "not enrolled" in outcome["detail"], outcome


def test_a_renamed_property_fails_the_replay(tmp_path: Path) -> None:
    copy = tmp_path / "renamed"
    shutil.copytree(DATA / "twin-ws2025-dc-hotpatch-oct2025", copy)
    hotpatch = copy / "hotpatch.json"
    hotpatch.write_text(hotpatch.read_text().replace('"HotPatchTableSize"', '"HotPatchTableBytes"'))
    problems = replay(copy)
    assert any("hotpatch.hotpatch_table_size" in p for p in problems), problems
    assert any("hotpatch enrollment" in json.dumps(p) or "conclusions" in p for p in problems), problems


def test_a_renamed_preflight_property_fails_the_replay(tmp_path: Path) -> None:
    copy = tmp_path / "renamed"
    shutil.copytree(DATA / "twin-ws2025-std-member-oct2025", copy)
    preflight = copy / "preflight.json"
    preflight.write_text(preflight.read_text().replace('"FreeBytes"', '"FreeSpace"'))
    from patchgate.errors import ProbeError

    with pytest.raises(ProbeError, match="missing properties FreeBytes"):
        replay(copy)


def test_capture_writes_a_redacted_transcript_that_replays(tmp_path: Path) -> None:
    out = tmp_path / "t"
    env_dir = tmp_path / "state"
    proc = subprocess.run([PATCHGATE, "capture", "--lab", "twin", "--vm", "ws25-wsus-01", "--out", str(out)],
                          check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATCHGATE_STATE_DIR": str(env_dir)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = json.loads((out / META).read_text())
    assert meta["build"] == "26100.6899" and meta["source"] == "twin" and meta["role"] == "wsus-server"
    assert meta["patchgate"] and not meta["names_kept"]
    texts = "".join(p.read_text() for p in out.iterdir())
    assert "ws25-wsus-01" not in texts.lower() and HOST_PLACEHOLDER in texts
    assert replay(out) == []
