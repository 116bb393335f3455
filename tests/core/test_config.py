"""Lab and candidate files: valid ones load; every mistake is one ConfigError naming file, field and line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from patchgate.config import load_candidate, load_lab, resolve_candidate, resolve_lab
from patchgate.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_default_lab_loads_with_typed_sections():
    lab = load_lab(ROOT / "labs" / "twin.yaml")
    assert lab.hypervisor.kind == "twin"
    assert lab.remoting.kind == "psrp" and lab.remoting.settings.auth == "basic"
    assert {vm.role for vm in lab.vms} == {"hotpatch-member", "wsus-server", "member"}
    assert all(vm.image for vm in lab.vms)


@pytest.mark.parametrize("kb", ["KB5066835", "KB5070881", "KB5070893", "KB5068966", "KB5068861", "KB5073379"])
def test_october_2025_candidates_load_and_their_packages_match(kb):
    candidate = load_candidate(resolve_candidate(kb))
    assert candidate.kb == kb
    assert candidate.package_path(candidate.packages[0]).is_file()


def test_kb5070881_and_kb5070893_report_the_same_build():
    oob = load_candidate(resolve_candidate("KB5070881"))
    wsus = load_candidate(resolve_candidate("KB5070893"))
    assert oob.target_build == wsus.target_build == "26100.6905"
    assert (oob.classification, wsus.classification) == ("oob", "wsus-security")


def _lab_text() -> str:
    return (ROOT / "labs" / "twin.yaml").read_text()


@pytest.mark.parametrize("change, field, line_of", [
    (("role: wsus-server", "role: wsus"), "vms[2].role", "role: wsus"),
    (("kind: psrp", "kind: winrm"), "remoting", "kind: winrm"),
    (("  total: 16", "  total: 0"), "limits.total", "total: 0"),
    (("  ready: 60", "  ready: 60\n  readdy: 3"), "timeouts.readdy", "readdy: 3"),
])
def test_bad_lab_field_names_file_field_and_line(tmp_path, change, field, line_of):
    text = _lab_text().replace(*change, 1)
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_lab(path)
    error = info.value
    expected_line = next(i for i, line in enumerate(text.splitlines(), 1) if line_of in line)
    assert error.file == str(path)
    assert error.field is not None and error.field.startswith(field.split("[")[0].split(".")[0])
    assert error.line == expected_line, str(error)
    assert str(error).startswith(f"{path}:{expected_line}: field ")


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("name: x\nvms: [\n  - a: b\n")
    with pytest.raises(ConfigError) as info:
        load_lab(path)
    assert info.value.line is not None and "YAML syntax error" in str(info.value)


def test_duplicate_vm_names_are_refused(tmp_path):
    text = _lab_text().replace("name: ws25-az-01", "name: ws25-hp-01")
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="appears twice"):
        load_lab(path)


def test_twin_vm_without_image_is_refused(tmp_path):
    text = _lab_text().replace("    image: ws2025-std-member-oct2025\n", "")
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="needs 'image'"):
        load_lab(path)


def test_candidate_package_hash_mismatch_names_the_field(tmp_path):
    shutil.copytree(ROOT / "candidates", tmp_path / "candidates")
    path = tmp_path / "candidates" / "KB5070893.yaml"
    (tmp_path / "candidates" / "packages" / "windows11.0-kb5070893-x64.twin.msu").write_text("tampered\n")
    with pytest.raises(ConfigError) as info:
        load_candidate(path)
    assert info.value.field == "packages[0].sha256"
    assert "has sha256" in str(info.value)


@pytest.mark.parametrize("text, field", [
    ("kb: 5070893x\n", "kb"),
    ("classification: security\n", "classification"),
    ("target_build: 6905\n", "target_build"),
])
def test_bad_candidate_fields(tmp_path, text, field):
    original = (ROOT / "candidates" / "KB5070893.yaml").read_text()
    key = text.split(":")[0]
    lines = [text.rstrip("\n") if line.startswith(f"{key}:") else line for line in original.splitlines()]
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as info:
        load_candidate(path, check_packages=False)
    assert info.value.field == field


def test_names_resolve_to_repository_files():
    assert resolve_lab("twin").name == "twin.yaml"
    assert resolve_candidate("5070881").name == "KB5070881.yaml"
    with pytest.raises(ConfigError, match="unknown candidate 'KB1234567'.*known: .*KB5070881"):
        resolve_candidate("KB1234567")


WAIVER_LINES = """  waivers:
    - invariant: {invariant}
      {scope}
      owner: jane.doe@example.com
      expires: 2030-01-31
      justification: accepted while the vendor fixes it
"""


@pytest.mark.parametrize("invariant, scope, field, words", [
    ("firewall.rule", "vms: [ws25-hp-01]", "policy.waivers[0].invariant",
     "unknown invariant 'firewall.rule', so the waiver could never apply (did you mean 'firewall.rules'?)"),
    ("hotpatch.track", "roles: [hotpatch]", "policy.waivers[0].roles[0]",
     "no role 'hotpatch' in lab 'twin', so the waiver could never apply (the lab's roles: hotpatch-member, "
     "member, wsus-server)"),
    ("hotpatch.track", "vms: [ws25-hp-99]", "policy.waivers[0].vms[0]", "no VM 'ws25-hp-99' in lab 'twin'"),
])
def test_a_waiver_that_could_never_match_is_refused_on_its_line(tmp_path, invariant, scope, field, words):
    text = _lab_text().replace("  waivers: []\n", WAIVER_LINES.format(invariant=invariant, scope=scope))
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1)
                if (t.strip().startswith("- invariant") if field.endswith("invariant") else scope in t))
    with pytest.raises(ConfigError) as caught:
        load_lab(path)
    assert str(caught.value).startswith(f"{path}:{line}: field '{field}': "), str(caught.value)
    assert words in str(caught.value)


def test_a_waiver_for_a_known_invariant_and_vm_loads(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(_lab_text().replace("  waivers: []\n", WAIVER_LINES.format(invariant="hotpatch.track",
                                                                               scope="roles: [hotpatch-member]")))
    assert load_lab(path).policy.waivers[0].roles == ["hotpatch-member"]


@pytest.mark.parametrize("old, new, field", [
    ('target_build: "26100.6905"', "target_build: 26100.7400", "target_build"),
    ("kb: KB5070893", "kb: 5070893", "kb"),
    ("sha256: 980d862e0f65574a7bb793f859053f41d2b9b1d731fd63b300840d7c46f89b05", "sha256: " + "1" * 64,
     "packages[0].sha256"),
])
def test_an_unquoted_number_says_quote_it(tmp_path, old, new, field):
    shutil.copytree(ROOT / "candidates", tmp_path / "candidates")
    path = tmp_path / "candidates" / "KB5070893.yaml"
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_candidate(path)
    assert info.value.field == field
    assert "YAML read the unquoted value as a number" in str(info.value) and "put it in quotes" in str(info.value)


def test_a_role_or_ring_no_vm_has_lists_the_labs_roles_and_rings():
    from patchgate.run.labrun import RunSelection

    lab = load_lab(ROOT / "labs" / "twin.yaml")
    with pytest.raises(ConfigError, match=r"--role hotpatch: no VM of lab 'twin' has it \(the lab's roles: "
                                          r"hotpatch-member, member, wsus-server\)"):
        RunSelection(roles=["hotpatch"]).apply(lab)
    with pytest.raises(ConfigError, match=r"--ring ring9: .*the lab's rings: ring0"):
        RunSelection(rings=["ring9"]).apply(lab)


def test_help_names_every_role_and_gives_every_command_a_description_and_exit_codes():
    import typing

    from patchgate.cli import ROLES, build_parser
    from patchgate.config.lab import Role

    assert ROLES == typing.get_args(Role)
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse keeps them nowhere else
    for name, sub in commands.items():
        assert sub.description and "exit codes" in (sub.epilog or sub.description), name
    validate_help = commands["validate"].format_help()
    assert "(repeatable): hotpatch-member, wsus-server" in " ".join(validate_help.split())
    for example in re.findall(r"--lab (labs/\S+)", parser.format_help()):
        assert (ROOT / example).is_file(), example


def test_candidate_new_fills_in_what_the_package_tells_and_insists_on_the_rest(tmp_path, capsys):
    from patchgate.cli import CLASSIFICATIONS, main
    from patchgate.config.candidate import Classification

    assert CLASSIFICATIONS == __import__("typing").get_args(Classification)
    package = tmp_path / "packages" / "windows11.0-kb5072033-x64.msu"
    package.parent.mkdir()
    package.write_bytes(b"a stand-in for the update package\n")
    out = tmp_path / "KB5072033.yaml"
    assert main(["candidate", "new", str(package), "--classification", "lcu", "--out", str(out)]) == 0
    text = out.read_text()
    assert "kb: KB5072033" in text and "file: \"packages/windows11.0-kb5072033-x64.msu\"" in text
    with pytest.raises(ConfigError) as info:
        load_candidate(out)
    assert info.value.field == "title" and "placeholder" in str(info.value)
    filled = (text.replace('"TODO: the title of KB5072033 as its KB article gives it"', '"December 2026 LCU"')
              .replace('target_build: "TODO"', 'target_build: "26100.7400"')
              .replace("release_date: TODO", "release_date: 2026-12-09")
              .replace('"TODO: https://support.microsoft.com/... (the KB article of KB5072033)"',
                       "https://support.microsoft.com/help/5072033"))
    out.write_text(filled)
    candidate = load_candidate(out)  # the package's sha256 was computed right
    assert candidate.kb == "KB5072033" and candidate.classification == "lcu"
    assert main(["candidate", "new", str(package), "--classification", "lcu", "--out", str(out)]) == 4
    nameless = tmp_path / "update.msu"
    nameless.write_bytes(b"x")
    assert main(["candidate", "new", str(nameless), "--classification", "lcu", "--out", str(tmp_path / "n.yaml")]) == 4
    assert "pass --kb" in capsys.readouterr().err


def _msu(path, properties: str | None, *, utf16: bool = True):
    """A real CAB archive laid out as an .msu (update .cab, WSUSSCAN.cab and, when given, the properties file)."""
    from cabarchive import CabArchive, CabFile

    archive = CabArchive()
    stem = path.name.removesuffix(".msu")
    archive[f"{stem}.cab"] = CabFile(b"the update's own cab\n" * 64)
    archive["WSUSSCAN.cab"] = CabFile(b"scan metadata\n")
    if properties is not None:
        data = b"\xff\xfe" + properties.encode("utf-16-le") if utf16 else properties.encode()
        archive[f"{stem}-pkgProperties.txt"] = CabFile(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(archive.save(compress=True))
    return path


PROPERTIES = ('ApplicabilityInfo="Windows Server 2025;"\r\nApplies to="Windows 11.0"\r\nBuild Date="2026/12/01"\r\n'
              'Installation Type="FULL"\r\nKB Article Number="5072033"\r\n'
              'Support Link="https://support.microsoft.com/help/5072033"\r\n')


@pytest.mark.parametrize("utf16", [True, False])
def test_candidate_new_reads_the_packages_own_properties(tmp_path, capsys, utf16):
    from patchgate.cli import main

    package = _msu(tmp_path / "windows11.0-kb5072033-x64.msu", PROPERTIES, utf16=utf16)
    out = tmp_path / "KB5072033.yaml"
    assert main(["candidate", "new", str(package), "--classification", "lcu", "--out", str(out)]) == 0
    document = yaml.safe_load(out.read_text())
    assert document["references"]["kb_article"] == "https://support.microsoft.com/help/5072033"
    assert "ApplicabilityInfo: Windows Server 2025;" in document["notes"]
    assert "Installation Type: FULL" in document["notes"] and "Applies to: Windows 11.0" in document["notes"]
    assert document["title"].startswith("TODO")  # no properties field is known to carry the title
    assert "Windows Server 2025" in capsys.readouterr().out


def test_candidate_new_says_when_the_package_holds_no_properties(tmp_path):
    from patchgate.cli import main

    out = tmp_path / "KB5072033.yaml"
    bare = _msu(tmp_path / "windows11.0-kb5072033-x64.msu", None)
    assert main(["candidate", "new", str(bare), "--classification", "lcu", "--out", str(out)]) == 0
    document = yaml.safe_load(out.read_text())
    assert "properties not read: the archive holds no *-pkgProperties.txt" in document["notes"]
    assert document["references"]["kb_article"].startswith("TODO")
    plain = tmp_path / "plain" / "windows11.0-kb5072033-x64.msu"
    plain.parent.mkdir()
    plain.write_bytes(b"not a cab\n")
    assert main(["candidate", "new", str(plain), "--classification", "lcu", "--out", str(tmp_path / "p.yaml")]) == 0
    assert "properties not read: not a CAB archive" in yaml.safe_load((tmp_path / "p.yaml").read_text())["notes"]


def test_candidate_new_refuses_a_package_whose_properties_name_another_kb(tmp_path, capsys):
    from patchgate.cli import main

    package = _msu(tmp_path / "windows11.0-kb5072033-x64.msu", PROPERTIES.replace("5072033", "5070881"))
    assert main(["candidate", "new", str(package), "--classification", "lcu", "--out", str(tmp_path / "x.yaml")]) == 4
    assert "KB Article Number 5070881, not KB5072033" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize("invariant", sorted(__import__("patchgate.config.policy", fromlist=["INVARIANTS"]).INVARIANTS))
def test_every_invariant_of_the_suites_can_be_waived(invariant: str) -> None:
    """The waiver's id pattern admits every area the suites check (management.reachable included)."""
    from patchgate.config.policy import Waiver

    waiver = Waiver(invariant=invariant, roles=["member"], justification="accepted for this lab until fixed",
                    owner="jdoe", expires="2030-01-31")
    assert waiver.invariant == invariant


def _twin_lab_with(tmp_path: Path, change) -> Path:
    document = yaml.safe_load(_lab_text())
    change(document)
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


VSPHERE = {"kind": "vsphere", "settings": {"url": "https://vcenter.example.com/sdk"}}


def real_vsphere(document):
    """The twin lab's VMs on a vCenter with real guests."""
    document.update(hypervisor=VSPHERE, secrets={"kind": "env"})
    for vm in document["vms"]:
        vm.pop("image")


@pytest.mark.parametrize("change, field, words", [
    (lambda d: d["hypervisor"]["settings"]["latency"].update(install=9999), "hypervisor.settings.latency.install",
     "less than or equal to 3600"),
    (lambda d: d["hypervisor"]["settings"].update(nosie="quiet"), "hypervisor.settings.nosie", "Extra inputs"),
    (lambda d: d["hypervisor"]["settings"].update(noise="loud"), "hypervisor.settings.noise", "'realistic' or"),
    (lambda d: d["hypervisor"].update(settings=[1]), "hypervisor.settings", "valid dictionary"),
    (lambda d: d["hypervisor"].update(kind="hyperv", settings={"guests": "twin"}), "hypervisor.settings",
     "name the Hyper-V host"),
    (lambda d: d["hypervisor"].update(kind="hyperv", settings={"host": "hv", "vm_ids": {"a": "b"}}),
     "hypervisor.settings.vm_ids", "is not a VMId"),
    (lambda d: d.update(hypervisor=VSPHERE, remoting={"kind": "psdirect"}), "remoting.kind",
     "unknown remoting kind 'psdirect' for a 'vsphere' lab: one of psrp, ssh"),
    (lambda d: d["hypervisor"].update(kind="xen"), "hypervisor.kind", "unknown lab kind 'xen'; installed kinds: "),
    (lambda d: d.update(hypervisor={"kind": "vsphere"}), "hypervisor.settings", "Field required"),
    (lambda d: d.update(hypervisor={"kind": "vsphere", "settings": {"url": "vcenter"}}), "hypervisor.settings.url",
     "http(s) URL"),
    (lambda d: d.update(hypervisor={"kind": "vsphere", "settings": {"url": "https://v/sdk", "guests": "xen"}}),
     "hypervisor.settings.guests", "unknown lab kind 'xen'"),
    (lambda d: d.update(secrets={"kind": "vsphere"}), "secrets.kind", "lab kind 'vsphere' keeps no accounts"),
    (lambda d: d.update(secrets={"kind": "xen"}), "secrets.kind", "unknown secrets kind 'xen': env, vault, or"),
    (lambda d: d.update(secrets={"kind": "twin", "settings": {"seed": 1}}), "secrets.settings.seed", "Extra inputs"),
    (lambda d: d["remoting"].update(kind="winrm"), "remoting.kind", "unknown remoting kind 'winrm' for a 'twin' lab"),
    (lambda d: d.update(hypervisor=VSPHERE, remoting={"kind": "inprocess"}), "remoting.kind",
     "unknown remoting kind 'inprocess' for a 'vsphere' lab: one of psrp, ssh"),
    (lambda d: d["vms"][1].pop("image"), "vms[1].image", "needs 'image'"),
    (lambda d: d.update(hypervisor=VSPHERE) or d["vms"][0].update(faults=["never-ready"]), "vms[0].faults",
     "only a lab kind that simulates the guests can inject"),
])
def test_a_lab_kinds_own_settings_are_checked_by_its_model_naming_file_field_and_line(tmp_path, change, field, words):
    """hypervisor.settings and secrets.settings are validated with the models the lab kind declares."""
    path = _twin_lab_with(tmp_path, change)
    with pytest.raises(ConfigError) as info:
        load_lab(path)
    assert (info.value.file, info.value.field) == (str(path), field), str(info.value)
    assert info.value.line is not None and words in str(info.value), str(info.value)


def test_a_lab_kind_declares_the_model_of_its_settings(tmp_path):
    from patchgate.hypervisors.vsphere.settings import VsphereSettings

    twin = load_lab(ROOT / "labs" / "twin.yaml")
    assert type(twin.hypervisor.settings).__module__ == "patchgate_twin.settings"
    assert twin.hypervisor.settings.noise == "realistic" and twin.simulated
    vsphere = load_lab(_twin_lab_with(tmp_path, real_vsphere))
    assert isinstance(vsphere.hypervisor.settings, VsphereSettings) and not vsphere.simulated


def test_catalogue_folders_for_a_lab_whose_kinds_read_none_are_refused(tmp_path):
    from patchgate.labkinds import KindOptions, check_kind_inputs

    lab = load_lab(_twin_lab_with(tmp_path, real_vsphere))
    with pytest.raises(ConfigError, match=r"--twin-catalog only applies to labs of a kind that reads catalogues "
                                          r"\(this lab's: vsphere\)"):
        check_kind_inputs(lab, KindOptions(catalogs=[tmp_path]))


def test_staging_defaults_to_the_harness_content_server_with_its_own_timeout():
    from patchgate.config.lab import Timeouts
    from patchgate.config.staging import Staging

    assert Staging().source == "harness" and Staging().address == "127.0.0.1"
    assert Timeouts().stage == 1800 and Timeouts().stage != Timeouts().install


def test_staging_wsus_is_refused_as_planned_and_share_needs_its_path():
    import pytest
    from pydantic import ValidationError

    from patchgate.config.staging import Staging

    with pytest.raises(ValidationError, match="planned"):
        Staging(source="wsus")
    with pytest.raises(ValidationError, match="needs share"):
        Staging(source="share")
    with pytest.raises(ValidationError, match="UNC path"):
        Staging(source="share", share={"path": "files01/updates"})
    share = Staging(source="share", share={"path": r"\\files01\updates", "credentials": "lab/share-reader"})
    assert share.share is not None and share.share.credentials == "lab/share-reader"


def test_doctor_warns_when_real_vms_would_pull_from_the_loopback_address():
    from patchgate.config import load_lab
    from patchgate.doctor.checks import staging_check

    twin = load_lab(ROOT / "labs" / "twin.yaml")
    assert staging_check(twin) is None  # the twin's guests are on this machine
    vsphere = load_lab(ROOT / "labs" / "vsphere-sim.example.yaml")
    real = vsphere.model_copy(update={"hypervisor": vsphere.hypervisor.model_copy(update={
        "settings": vsphere.hypervisor.settings.model_copy(update={"guests": "real"})})})
    check = staging_check(real)
    assert check is not None and check.status == "warn" and "127.0.0.1" in check.detail
    assert "staging.address" in check.advice
    lab_facing = real.model_copy(update={"staging": real.staging.model_copy(update={"address": "10.0.0.5"})})
    assert staging_check(lab_facing) is None
