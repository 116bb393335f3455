"""The lab file's `install: {via: wsus}` and `wsus:` section: what loads, and one clear error for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchgate.config import load_lab
from patchgate.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "labs" / "twin-wsus.example.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return path


def test_the_example_installs_through_its_wsus_server():
    lab = load_lab(EXAMPLE)
    assert lab.install.via == "wsus"
    assert lab.wsus is not None and (lab.wsus.server, lab.wsus.group) == ("ws25-wsus-01", "patchgate-lab")


def test_a_lab_without_install_installs_the_package():
    lab = load_lab(ROOT / "labs" / "twin.yaml")
    assert lab.install.via == "package" and lab.wsus is None


@pytest.mark.parametrize("change, field, words", [
    (("wsus:\n  server: ws25-wsus-01", "wsus-off:\n  server: ws25-wsus-01"), "wsus-off", "Extra inputs"),
    (("server: ws25-wsus-01", "server: ws25-nope"), "wsus.server", "not a VM of the lab"),
    (("server: ws25-wsus-01", "server: ws25-hp-01"), "wsus.server", "not wsus-server"),
    (("group: patchgate-lab", "group: 'lab;1'"), "wsus.group", "cannot contain ;"),
    (("via: wsus ", "via: winget "), "install.via", "package"),
    (("timeouts:\n", "limits:\n  total: 2\ntimeouts:\n"), "limits.total", "at least 3"),
])
def test_a_wrong_wsus_field_is_named_with_its_line(tmp_path, change, field, words):
    text = EXAMPLE.read_text().replace(*change, 1)
    with pytest.raises(ConfigError) as info:
        load_lab(_write(tmp_path, text))
    assert info.value.field is not None and info.value.field.startswith(field), str(info.value)
    assert words in str(info.value) and info.value.line is not None


def test_via_wsus_without_a_wsus_section_says_what_is_missing(tmp_path):
    text = EXAMPLE.read_text()
    start, end = text.index("\nwsus:\n"), text.index("\nvms:\n")
    with pytest.raises(ConfigError) as info:
        load_lab(_write(tmp_path, text[:start] + text[end:]))
    assert info.value.field == "install.via" and "needs a `wsus:` section" in str(info.value)


EXTERNAL = ROOT / "labs" / "twin-wsus-external.example.yaml"


def test_the_external_example_names_a_wsus_outside_the_lab_reached_over_the_lab_s_remoting():
    from patchgate.wsus.external import external_server

    lab = load_lab(EXTERNAL)
    assert lab.wsus is not None and lab.wsus.external is not None and lab.wsus.server_name == "wsus-ext-01"
    server = external_server(lab)
    assert server.address == "127.0.0.1" and server.remoting.settings.port == 55985
    assert server.remoting.settings.auth == "basic" and server.secrets == lab.secrets


@pytest.mark.parametrize("server, field, words", [
    ("{address: 127.0.0.1, bogus: 1}", "wsus.server.bogus", "Extra inputs"),
    ("{name: wsus-ext-01}", "wsus.server.address", "Field required"),
    ("{address: 127.0.0.1, port: 70000}", "wsus.server.port", "less than or equal"),
    ("{address: 127.0.0.1, name: ws25-hp-01}", "wsus.server.name", "is a VM of the lab"),
    ("{address: 127.0.0.1, name: 'a b'}", "wsus.server.name", "pattern"),
    ("''", "wsus.server", "1-255 characters"),
])
def test_a_wrong_external_server_is_named_with_its_line(tmp_path, server, field, words):
    text = EXTERNAL.read_text()
    start, end = text.index("  server:"), text.index("  group: patchgate-lab")
    with pytest.raises(ConfigError) as info:
        load_lab(_write(tmp_path, text[:start] + f"  server: {server}\n" + text[end:]))
    assert info.value.field == field and words in str(info.value) and info.value.line is not None, str(info.value)


def test_an_external_server_needs_env_or_vault_secrets(tmp_path):
    text = EXTERNAL.read_text()
    start, end = text.index("secrets:\n"), text.index("install:\n")
    with pytest.raises(ConfigError) as info:
        load_lab(_write(tmp_path, text[:start] + "secrets:\n  kind: twin\n\n" + text[end:]))
    assert info.value.field == "wsus.server" and "env or vault" in str(info.value)
