"""Bad input, generated: malformed lab, candidate, policy and twin catalogue files and command lines.

Every example must end with exit 4 and ONE line on stderr naming the file (and, for a bad field, the field), never a
traceback, and nothing may be touched: no suite run starts, no ledger, lease or twin disk is written. Runs in-process
through ``patchgate.cli.main`` (fast enough for 500+ examples); a few examples also go through the real binary.
"""

from __future__ import annotations

import copy
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchgate import cli
from patchgate.cli import validate as validate_command
from patchgate_twin.faults import FAULTS

ROOT = Path(__file__).resolve().parents[2]
PATCHGATE = str(Path(sys.executable).with_name("patchgate"))
EXAMPLES = int(os.environ.get("PATCHGATE_BAD_INPUT_EXAMPLES", "500"))
ROLES = {"hotpatch-member", "wsus-server", "member", "domain-controller", "hyperv-host"}
CLASSIFICATIONS = {"hotpatch", "baseline", "lcu", "oob", "wsus-security", "other"}

BASE_LAB: dict[str, Any] = {
    "name": "fuzz",
    "hypervisor": {"kind": "twin", "settings": {"latency": {"revert": 0, "install": 0}}},
    "remoting": {"kind": "psrp", "settings": {"ssl": False, "auth": "basic", "encryption": "never", "port": 5985,
                                              "read_timeout": 30, "operation_timeout": 20}},
    "secrets": {"kind": "twin"},
    "vms": [{"name": "vm-a", "role": "hotpatch-member", "snapshot": "base", "image": "ws2025-dc-hotpatch-oct2025",
             "faults": []},
            {"name": "vm-b", "role": "member", "snapshot": "base", "image": "ws2025-std-member-oct2025"}],
    "limits": {"total": 4, "revert": 2},
    "timeouts": {"ready": 10, "install": 10},
    "retries": {"count": 1, "backoff": 0.5},
    "policy": {"allow": {"kbs": [], "services": []},
               "waivers": [{"invariant": "hotpatch.track", "justification": "known issue, tracked in CHG-1",
                            "owner": "qa", "expires": "2099-01-01", "vms": ["vm-a"]}]},
}

# ------------------------------------------------------------------ strategies

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
junk_container = st.one_of(st.lists(st.integers(), min_size=1, max_size=3),
                           st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.integers(),
                                           min_size=1, max_size=2))
ident = st.from_regex(r"[a-z][a-z_]{2,10}", fullmatch=True)


@dataclass(frozen=True)
class Mutation:
    """A change that makes a document invalid, and the field the error must name (None: only the file)."""

    path: tuple[str | int, ...]
    op: str  # delete | set | add
    value: Any = None
    field: str | None = None


def _lab_mutations() -> st.SearchStrategy[Mutation]:
    required = ["name", "hypervisor", "remoting", "secrets", "vms"]
    nested_required = [("hypervisor", "kind"), ("remoting", "kind"), ("secrets", "kind"), ("vms", 0, "name"),
                       ("vms", 0, "role"), ("vms", 1, "snapshot"), ("vms", 1, "image"),
                       ("policy", "waivers", 0, "owner"), ("policy", "waivers", 0, "expires")]
    scalar_fields = [("name",), ("description",), ("vms", 0, "name"), ("vms", 1, "role"), ("vms", 0, "snapshot"),
                     ("timeouts", "ready"), ("retries", "count"), ("limits", "total"),
                     ("remoting", "settings", "ssl"), ("remoting", "settings", "port"),
                     ("hypervisor", "settings", "latency", "install"), ("policy", "waivers", 0, "expires")]
    ranges = st.one_of(
        st.tuples(st.just(("timeouts", "ready")), st.floats(max_value=0, allow_nan=False)),
        st.tuples(st.just(("limits", "total")), st.one_of(st.integers(max_value=0), st.integers(min_value=513))),
        st.tuples(st.just(("retries", "count")), st.one_of(st.integers(max_value=-1), st.integers(min_value=11))),
        st.tuples(st.just(("retries", "backoff")), st.floats(min_value=300.5, allow_infinity=False)),
        st.tuples(st.just(("remoting", "settings", "port")),
                  st.one_of(st.integers(max_value=0), st.integers(min_value=65536))),
        st.tuples(st.just(("hypervisor", "settings", "latency", "install")), st.integers(min_value=3601)),
        st.tuples(st.just(("remoting", "settings", "read_timeout")), st.integers(min_value=1, max_value=20)),
    )
    enums = st.one_of(
        st.tuples(st.just(("vms", 0, "role")), text.filter(lambda t: t not in ROLES)),
        st.tuples(st.just(("hypervisor", "kind")), text.filter(lambda t: t not in ("twin", "vsphere", "hyperv"))),
        st.tuples(st.just(("remoting", "kind")), text.filter(lambda t: t not in ("psrp", "ssh", "inprocess"))),
        st.tuples(st.just(("secrets", "kind")), text.filter(lambda t: t not in ("env", "vault", "twin"))),
        st.tuples(st.just(("remoting", "settings", "auth")), text),
        st.tuples(st.just(("vms", 1, "name")), st.from_regex(r"[a-z]{0,4}[ /:*?!]{1,2}[a-z]{0,4}", fullmatch=True)),
        st.tuples(st.just(("policy", "waivers", 0, "invariant")), st.from_regex(r"[A-Z ]{1,8}", fullmatch=True)),
    )
    mappings = [(), ("hypervisor",), ("remoting", "settings"), ("vms", 0), ("timeouts",), ("retries",),
                ("policy",), ("policy", "allow"), ("policy", "waivers", 0), ("hypervisor", "settings", "latency")]
    return st.one_of(
        st.sampled_from(required).map(lambda k: Mutation((k,), "delete", field=k)),
        st.sampled_from(nested_required).map(lambda p: Mutation(p, "delete", field=str(p[-1]))),
        st.tuples(st.sampled_from(scalar_fields), junk_container).map(
            lambda t: Mutation(t[0], "set", t[1], field=str(t[0][-1]))),
        ranges.map(lambda t: Mutation(t[0], "set", t[1], field=str(t[0][-1]) if t[0][-1] != "read_timeout"
                                      else "settings")),
        enums.map(lambda t: Mutation(t[0], "set", t[1], field=str(t[0][-1]))),
        st.tuples(st.sampled_from(mappings), ident).map(
            lambda t: Mutation(t[0] + ("zz_" + t[1],), "set", 1, field="zz_" + t[1])),
        text.filter(lambda t: t.partition(":")[0].strip() not in FAULTS).map(
            lambda t: Mutation(("vms", 0, "faults"), "set", [t], field="faults")),
        st.from_regex(r"ws2025-[a-z]{3,8}", fullmatch=True).map(
            lambda t: Mutation(("vms", 1, "image"), "set", t, field="image")),
        st.just(Mutation(("vms",), "set", [], field="vms")),
        st.just(Mutation(("vms", 1, "name"), "set", "vm-a", field=None)),  # duplicate VM name
        st.just(Mutation(("policy", "allow", "kbs"), "set", ["not-a-kb"], field="kbs")),
        st.just(Mutation(("policy", "waivers", 0, "justification"), "set", "short", field="justification")),
    )


def _candidate_mutations() -> st.SearchStrategy[Mutation]:
    required = ["kb", "title", "classification", "target_build", "release_date", "packages", "references"]
    return st.one_of(
        st.sampled_from(required).map(lambda k: Mutation((k,), "delete", field=k)),
        st.from_regex(r"(KB)?[0-9]{0,4}[a-z]{0,2}", fullmatch=True).map(lambda t: Mutation(("kb",), "set", t,
                                                                                           field="kb")),
        text.filter(lambda t: t not in CLASSIFICATIONS).map(
            lambda t: Mutation(("classification",), "set", t, field="classification")),
        st.from_regex(r"[0-9]{1,4}(\.[a-z0-9]{0,3})?", fullmatch=True).map(
            lambda t: Mutation(("target_build",), "set", t, field="target_build")),
        st.from_regex(r"20[0-9]{2}-1[3-9]-[0-9]{2}", fullmatch=True).map(
            lambda t: Mutation(("release_date",), "set", t, field="release_date")),
        st.from_regex(r"[0-9a-f]{10,63}", fullmatch=True).map(
            lambda t: Mutation(("packages", 0, "sha256"), "set", t, field="sha256")),
        st.from_regex(r"[0-9a-f]{64}", fullmatch=True).map(
            lambda t: Mutation(("packages", 0, "sha256"), "set", t, field="sha256")),  # well-formed, wrong digest
        ident.map(lambda t: Mutation(("packages", 0, "file"), "set", f"missing/{t}.msu", field="file")),
        st.just(Mutation(("packages",), "set", [], field="packages")),
        st.from_regex(r"CVE-[0-9]{1,3}-[a-z]{1,4}", fullmatch=True).map(
            lambda t: Mutation(("references", "cves"), "set", [t], field="cves")),
        ident.map(lambda t: Mutation(("references", "kb_article"), "set", t, field="kb_article")),
        ident.map(lambda t: Mutation(("zz_" + t,), "set", "x", field="zz_" + t)),
        junk_container.map(lambda v: Mutation(("title",), "set", v, field="title")),
    )


def _catalog_mutations() -> st.SearchStrategy[tuple[str, Any]]:
    """(file name under the catalogue dir, document) for a twin catalogue that cannot load."""
    behaviour = {"kb": "KB9999901", "title": "fuzz behaviour", "classification": "other", "effects": []}
    return st.one_of(
        st.just(("catalog/x.yaml", {"behaviours": []})),
        junk_container.map(lambda v: ("catalog/x.yaml", {"behaviours": v})),
        st.sampled_from(["kb", "title"]).map(
            lambda k: ("catalog/x.yaml", {"behaviours": [{f: v for f, v in behaviour.items() if f != k}]})),
        ident.map(lambda k: ("catalog/x.yaml", {"behaviours": [{**behaviour, "zz_" + k: 1}]})),
        ident.map(lambda k: ("catalog/x.yaml", {"zz_" + k: 1, "behaviours": [behaviour]})),
        junk_container.map(lambda v: ("images/x.yaml", v)),
    )


YAML_BREAKERS = ["key: [unclosed\n", "\t- tab: indented\n", "a: b: c\n", "- item\nkey: value\n", "{{\n",
                 "x: 'unterminated\n", "? [a\n", "&anchor x: *missing\n", "\x00\n"]


def _apply(doc: Any, mutation: Mutation) -> Any:
    doc = copy.deepcopy(doc)
    *parents, last = mutation.path
    target = doc
    for key in parents:
        target = target[key]
    if mutation.op == "delete":
        del target[last]
    else:
        target[last] = mutation.value
    return doc


# ------------------------------------------------------------------ running the CLI in-process

@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("badinput")
    package = folder / "kb5070893.twin.msu"
    package.write_text("patchgate twin stand-in package\nkb: KB5070893\n")
    candidate = {"kb": "KB5070893", "title": "fuzzed candidate", "classification": "wsus-security",
                 "target_build": "26100.6905", "release_date": "2025-10-24",
                 "packages": [{"file": str(package), "sha256": hashlib.sha256(package.read_bytes()).hexdigest()}],
                 "references": {"kb_article": "https://support.microsoft.com/kb/5070893", "cves": ["CVE-2025-59287"]}}
    lab_file, cand_file = folder / "lab.yaml", folder / "candidate.yaml"
    lab_file.write_text(yaml.safe_dump(BASE_LAB))
    cand_file.write_text(yaml.safe_dump(candidate))
    return {"folder": folder, "lab": lab_file, "candidate": cand_file, "candidate_doc": candidate}


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Fresh state dir. `patchgate validate` may start the suites while it checks the files itself, but for bad
    input it must stop them unwaited (they would refuse the same input, silently): waiting for them fails."""
    state = tmp_path / "state"
    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(state))

    class Suites:
        killed = False

        def kill(self) -> None:
            self.killed = True

        def wait(self) -> int:
            if not self.killed:
                raise AssertionError("the suites ran for bad input")
            return -9

        def poll(self) -> int | None:
            return -9 if self.killed else None

    monkeypatch.setattr(validate_command, "_start_suites", lambda *_args, **_kwargs: Suites())
    return state


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else 4
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_clear_line(code: int, out: str, err: str, *, file: Path | None, field: str | None) -> None:
    shown = f"exit {code}\nstdout: {out!r}\nstderr: {err!r}"
    assert code == 4, shown
    assert "Traceback" not in out + err and "internal error" not in err, shown
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    if file is not None:
        assert str(file) in lines[0], shown
    if field is not None:
        assert field in lines[0], shown


def assert_untouched(state: Path) -> None:
    for sub in ("runs", "twin", "leases"):
        folder = state / sub
        assert not folder.exists() or not any(folder.iterdir()), f"{folder} was written for bad input"


# ------------------------------------------------------------------ the property

Case = tuple[str, Any]
cases = st.one_of(
    _lab_mutations().map(lambda m: ("lab", m)),
    _candidate_mutations().map(lambda m: ("candidate", m)),
    _catalog_mutations().map(lambda c: ("catalog", c)),
    st.tuples(st.sampled_from(["lab", "candidate", "catalog"]), st.sampled_from(YAML_BREAKERS)).map(
        lambda t: ("yaml", t)),
    st.tuples(st.sampled_from(["lab", "candidate"]), st.one_of(junk_container, text, st.integers())).map(
        lambda t: ("toplevel", t)),
    st.integers(min_value=0, max_value=12).map(lambda i: ("argv", i)),
)


def _argv_case(index: int, ws: dict[str, Any], missing: Path) -> tuple[list[str], Path | None, str | None]:
    lab, cand = str(ws["lab"]), str(ws["candidate"])
    table: list[tuple[list[str], Path | None, str | None]] = [
        (["validate", "--lab", lab], None, "--candidate"),
        (["validate", "--candidate", cand], None, "--lab"),
        (["validate", "--lab", str(missing), "--candidate", cand], missing, None),
        (["validate", "--lab", lab, "--candidate", str(missing)], missing, None),
        (["validate", "--lab", lab, "--candidate", cand, "--vm", "no-such-vm"], None, "no-such-vm"),
        (["validate", "--lab", lab, "--candidate", cand, "--role", "domain-controller"], None, "--role"),
        (["validate", "--lab", lab, "--candidate", cand, "--twin-catalog", str(missing)], missing, None),
        (["validate", "--lab", lab, "--candidate", cand, "--no-such-option"], None, "--no-such-option"),
        (["validate", "--lab", str(ws["folder"]), "--candidate", cand], ws["folder"], None),
        (["no-such-command"], None, "no-such-command"),
        (["gate", str(missing)], missing, None),
        (["leases", "--lab", str(missing)], missing, None),
        (["reap", "--lab", str(missing)], missing, None),
    ]
    return table[index]


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases)
def test_bad_input_exits_4_with_one_clear_line_and_touches_nothing(
        case: Case, workspace: dict[str, Any], guarded: Path, capsys: pytest.CaptureFixture[str],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    kind, payload = case
    folder = tmp_path_factory.mktemp("case")
    lab, cand = workspace["lab"], workspace["candidate"]
    argv_extra: list[str] = []
    file: Path | None
    field: str | None = None
    if kind == "lab":
        lab = file = folder / "lab.yaml"
        lab.write_text(yaml.safe_dump(_apply(BASE_LAB, payload), allow_unicode=True))
        field = payload.field
    elif kind == "candidate":
        cand = file = folder / "candidate.yaml"
        cand.write_text(yaml.safe_dump(_apply(workspace["candidate_doc"], payload), allow_unicode=True))
        field = payload.field
    elif kind == "catalog":
        name, doc = payload
        file = folder / "twin" / name
        file.parent.mkdir(parents=True)
        file.write_text(yaml.safe_dump(doc))
        argv_extra = ["--twin-catalog", str(folder / "twin")]
    elif kind in ("yaml", "toplevel"):
        which, body = payload
        file = folder / f"{which}.yaml"
        if kind == "yaml":
            file.write_text(body)
        else:
            file.write_text(yaml.safe_dump(body, allow_unicode=True))
        if which == "lab":
            lab = file
        elif which == "candidate":
            cand = file
        else:
            (folder / "cat" / "catalog").mkdir(parents=True)
            file = folder / "cat" / "catalog" / "x.yaml"
            file.write_text(body if kind == "yaml" else yaml.safe_dump(body))
            argv_extra = ["--twin-catalog", str(folder / "cat")]
    else:
        argv, file, field = _argv_case(payload, workspace, folder / "missing.yaml")
        code, out, err = run_cli(argv, capsys)
        assert_one_clear_line(code, out, err, file=file, field=field)
        assert_untouched(guarded)
        return
    code, out, err = run_cli(["validate", "--lab", str(lab), "--candidate", str(cand), *argv_extra], capsys)
    assert_one_clear_line(code, out, err, file=file, field=field)
    assert_untouched(guarded)


@pytest.mark.slow
@settings(max_examples=4, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=_lab_mutations())
def test_bad_lab_through_the_real_binary(mutation: Mutation, workspace: dict[str, Any],
                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("binary")
    lab = folder / "lab.yaml"
    lab.write_text(yaml.safe_dump(_apply(BASE_LAB, mutation), allow_unicode=True))
    env = {**os.environ, "PATCHGATE_STATE_DIR": str(folder / "state")}
    proc = subprocess.run([PATCHGATE, "validate", "--lab", str(lab), "--candidate", str(workspace["candidate"])],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert_one_clear_line(proc.returncode, proc.stdout, proc.stderr, file=lab, field=mutation.field)
    assert_untouched(folder / "state")


@pytest.mark.parametrize("broken", ["state", "out"])
def test_an_unusable_state_or_output_folder_is_bad_input(broken: str, tmp_path: Path) -> None:
    """A folder patchgate must write to that cannot exist (here: below a plain file) is named, exit 4, before any
    VM is touched; never a traceback in the middle of a run."""
    from tests.support.runs import clean_env, patchgate

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    state = blocker / "state" if broken == "state" else tmp_path / "state"
    out = blocker / "out" if broken == "out" else tmp_path / "out"
    proc = patchgate("validate", "--lab", "twin", "--candidate", "KB5070881", "--out", str(out),
                     env=clean_env(state), timeout=120)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(blocker / broken) in lines[0] and "Not a directory" in lines[0]
    assert not (tmp_path / "state" / "runs").exists()  # nothing ran
