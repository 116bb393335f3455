"""The rings file (docs/rings.md): strict, every error names file, field and line; rings in a lab file take the
lab's remoting and secrets when they are the engine's own kinds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from patchgate.cli import main
from patchgate.config import load_lab
from patchgate.config.rings import load_rings, parse_duration
from patchgate.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "labs" / "rings-twin.example.yaml"
LAB = ROOT / "labs" / "twin-wsus.example.yaml"


def _write(tmp_path: Path, old: str, new: str, *, name: str = "rings.yaml") -> Path:
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


def test_the_example_loads_in_promotion_order():
    rings = load_rings(EXAMPLE)
    assert [r.name for r in rings.rings] == ["ring1", "ring2"]
    ring1, ring2 = rings.rings
    assert ring1.deadline == dt.timedelta(days=3) and ring1.soak_time == dt.timedelta(0)
    assert ring2.after == "ring1" and ring2.soak_time == dt.timedelta(days=2)
    assert ring2.groups == ["ring2-servers", "ring2-sql"]
    now = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    assert ring2.deadline_at(now) == now + dt.timedelta(days=7)


@pytest.mark.parametrize("old, new, field, words", [
    ("    after: ring1", "    after: ring3", "rings[1].after", "not defined before ring 'ring2'"),
    ("    soak: 2d", "    soak: two days", "rings[1].soak", "soak must be like 7d"),
    ("    server: wsus-prod-01\n    groups: [ring1-servers]", "    server: wsus-prod-02\n    groups: [ring1-servers]",
     "rings[0].server", "no server 'wsus-prod-02'"),
    ("    groups: [ring1-servers]", "    groups: [ring1;servers]", "rings[0].groups", "not a WSUS computer target"),
    ("    deadline: 3d", "    deadline: 2026-12-10T18:00:00", "rings[0].deadline", "needs its UTC offset"),
    ("    deadline: 3d", "    deadlines: 3d", "rings[0].deadlines", "Extra inputs are not permitted"),
    ("      kind: env", "      kind: plain", "servers.wsus-prod-01.secrets.kind", ""),
])
def test_a_bad_rings_file_names_its_file_field_and_line(tmp_path, old, new, field, words):
    path = _write(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_rings(path)
    assert caught.value.file == str(path) and caught.value.field == field and caught.value.line
    assert words in caught.value.detail


def test_a_server_of_a_rings_file_must_say_where_its_credentials_come_from(tmp_path):
    text = EXAMPLE.read_text()
    start = text.index("    secrets:")
    end = text.index("\nrings:")
    path = tmp_path / "rings.yaml"
    path.write_text(text[:start] + text[end:])
    with pytest.raises(ConfigError, match="needs `secrets`") as caught:
        load_rings(path)
    assert caught.value.field == "servers.wsus-prod-01.secrets"


def test_rings_in_a_lab_file_take_the_lab_remoting_and_are_checked_with_the_lab(tmp_path):
    rings = EXAMPLE.read_text().split("servers:", 1)[1]
    server = ("rings:\n  servers:\n    wsus-prod-01:\n      address: wsus01.contoso.local\n      secrets: {kind: env}\n"
              "  rings:\n    - {name: ring1, server: wsus-prod-01, groups: [ring1-servers]}\n")
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text(LAB.read_text() + "\n" + server)
    assert "ring1" in rings
    lab = load_lab(lab_file)
    loaded = load_rings(lab_file, lab)
    assert loaded.servers["wsus-prod-01"].remoting == lab.remoting
    lab_file.write_text(LAB.read_text() + "\n" + server.replace("groups: [ring1-servers]", "groups: []"))
    with pytest.raises(ConfigError) as caught:
        load_lab(lab_file)
    assert caught.value.field == "rings.rings[0].groups" and caught.value.line


@pytest.mark.parametrize("text, seconds", [("7d", 604800), ("36h", 129600), ("1d12h", 129600), ("90m", 5400),
                                           ("0", 0), (45, 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


def test_promote_usage_errors_exit_4_with_one_line(capsys, tmp_path):
    assert main(["promote", str(tmp_path), "--ring", "ring1", "--max-age", "soon"]) == 4
    assert "--max-age must be like 7d" in capsys.readouterr().err
    assert main(["promote", str(tmp_path)]) == 4
    assert "needs RUN_DIR and --ring" in capsys.readouterr().err
    assert main(["promote", "--status", "KB5070893"]) == 4
    assert "--status needs --rings FILE or --lab LAB" in capsys.readouterr().err
    assert main(["promote", str(tmp_path), "--ring", "ring1"]) == 4
    assert "promotion refused: no gate.json" in capsys.readouterr().err
