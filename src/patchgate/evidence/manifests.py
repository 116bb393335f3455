"""Evidence an auditor can re-check months later: the run manifest, the evidence manifest and ``patchgate verify``.

Two documents are written at the very end of a run, after gate.json and the JUnit properties:

* ``run-manifest.json`` says *what was tested, on what, with what*: patchgate version and git commit, the lab and
  candidate files and their sha256, the declared and actual sha256 of each package, the sha256 of every script
  that ran on a VM (probes, actions, remoting operation scripts), each VM's snapshot identifier and step timings,
  and whether certificates were checked.
* ``evidence-manifest.json`` lists *every output file* (gate.json, junit.xml, run-manifest.json, vms/*.json, each
  Allure result, container and attachment) with its sha256 and size. It is the one file a signature has to cover:
  whoever trusts it can trust every file it lists.

``patchgate verify DIR`` re-hashes the folder against the evidence manifest and names each changed, missing and
extra file. Files derived from the evidence afterwards (the HTML report, the summary, signatures, the public key)
are not evidence and are never added to it: the evidence manifest is written once and never rewritten, because a
signature may already cover it. ``patchgate report`` records its own outputs in ``report-manifest.json``, which
``verify`` checks too when present.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import getpass
import hashlib
import importlib
import json
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from patchgate import __version__
from patchgate.atomic import atomic_write
from patchgate.evidence.ci import ci_context
from patchgate.errors import ConfigError
from patchgate.evidence.hashing import package_sha256, sha256_file
from patchgate.labkinds import kind_facts
from patchgate.secrets.redact import redactor

log = logging.getLogger(__name__)

RUN_MANIFEST = "run-manifest.json"
EVIDENCE_MANIFEST = "evidence-manifest.json"
REPORT_MANIFEST = "report-manifest.json"
RUN_SCHEMA = "patchgate.run-manifest/1"
EVIDENCE_SCHEMA = "patchgate.evidence.manifests-manifest/1"
REPORT_SCHEMA = "patchgate.evidence.report-manifest/1"

DERIVED = ("report/*", "summary.html", "summary.md", REPORT_MANIFEST, EVIDENCE_MANIFEST, "*.sig", "*.pub.pem",
           "*.tmp", "promotions/*")
"""Relative paths (fnmatch patterns) that are not evidence: built from it afterwards, or signatures over it.
``promotions/``: records of later promotions, checked against their own appendix (evidence/promotions.py)."""

COMPONENT_PACKAGES = ("pypsrp", "pyvmomi", "hvac", "pytest", "allure-pytest", "pytest-xdist", "pytest-testinfra",
                      "pydantic")
EXIT_OK = 0
EXIT_MISMATCH = 1


# ------------------------------------------------------------------------------------------------ hashing


def is_derived(relative: str) -> bool:
    return any(fnmatch.fnmatchcase(relative, pattern) for pattern in DERIVED)


def evidence_files(out_dir: Path) -> list[str]:
    """Every file under ``out_dir`` that is evidence, as sorted POSIX paths relative to it."""
    found = []
    for path in out_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            relative = path.relative_to(out_dir).as_posix()
            if not is_derived(relative):
                found.append(relative)
    return sorted(found)


# ------------------------------------------------------------------------------------------------ provenance

PACKAGE_FOLDER = Path(__file__).resolve().parents[1]  # patchgate's own code: a checkout's commit, when it is one


def git_commit(root: Path | None) -> dict[str, Any] | None:
    """The checkout's commit and whether it had local changes; None outside a git checkout or without git. Read
    once per process: the code a run loaded is the code of its start (the suites read it while the lab works)."""
    found = _git_commit(root)
    return dict(found) if found is not None else None


@functools.cache
def _git_commit(root: Path | None) -> dict[str, Any] | None:
    if root is None or not root.is_dir():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(status.strip())}


def component_versions() -> dict[str, str | None]:
    """The versions of patchgate and the components it talks through, read once per process."""
    return dict(_component_versions())


@functools.cache
def _component_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version(), "patchgate": __version__}
    for name in COMPONENT_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def script_hashes() -> dict[str, dict[str, str]]:
    """sha256 of every script patchgate can run on a VM, by family; a family that cannot be listed is empty."""
    families: dict[str, dict[str, str]] = {}
    for family, module, function in (("probes", "patchgate.probes", "probe_hashes"),
                                     ("actions", "patchgate.actions", "action_hashes"),
                                     ("doctor", "patchgate.doctor.facts", "script_hashes")):
        try:
            provider = getattr(importlib.import_module(module), function, None)
            if provider is None:
                provider = getattr(importlib.import_module(f"{module}.batch"), function, None)
            families[family] = dict(provider()) if provider else {}
        except ImportError:
            families[family] = {}
    for family, folder in (("remoting", PACKAGE_FOLDER / "remoting" / "scripts"),
                           ("wsus", PACKAGE_FOLDER / "wsus" / "scripts")):
        families[family] = {p.name: sha256_file(p) for p in sorted(folder.glob("*.ps1"))}
    return families


def _install_facts(lab: Any) -> dict[str, Any]:
    """How the candidate reached the VMs (docs/wsus.md): a package, or WSUS with its server and group."""
    if lab.install.via != "wsus" or lab.wsus is None:
        return {"via": lab.install.via}
    facts = {"via": "wsus", "server": lab.wsus.server_name, "group": lab.wsus.group, "url": lab.wsus.url}
    external = lab.wsus.external
    if external is not None:  # outside the lab: where it was reached (the approval and its undo: wsus.json)
        facts["external"] = {"address": external.address, "hostname": external.hostname, "port": external.port,
                             "ssl": external.ssl}
    return facts


def _staging_facts(lab: Any) -> dict[str, Any]:
    """Where the VMs took the package from (docs/lab-file.md, staging): the content server's address, the share,
    or the remoting session. The share's credentials are a reference and stay out: only where, not who."""
    staging = lab.staging
    if staging.source == "harness":
        return {"source": "harness", "address": staging.address}
    if staging.source == "share" and staging.share is not None:
        return {"source": "share", "path": staging.share.path}
    return {"source": staging.source}


def _file_entry(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {"file": None, "sha256": None}
    path = Path(path)
    return {"file": str(path), "sha256": sha256_file(path) if path.is_file() else None}


def _packages(candidate: Any) -> list[dict[str, Any]]:
    packages = []
    for package in candidate.packages:
        path = candidate.package_path(package)
        actual = package_sha256(path) if path.is_file() else None
        packages.append({"file": package.file, "path": str(path), "declared_sha256": package.sha256,
                         "actual_sha256": actual,
                         "matches": None if actual is None else actual.lower() == package.sha256.lower()})
    return packages


def vm_summaries(out_dir: Path) -> list[dict[str, Any]]:
    """The per-VM records written by the run (vms/<vm>.json), sorted by VM name."""
    folder = out_dir / "vms"
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def cert_validation_of(vms: list[dict[str, Any]]) -> dict[str, bool]:
    for vm in vms:
        if vm.get("cert_validation"):
            return dict(vm["cert_validation"])
    return {}


# ------------------------------------------------------------------------------------------------ writing

@dataclass
class RunFacts:
    """What the run knew about itself; the pytest wiring fills it from the run state."""

    out_dir: Path
    run_id: str
    lab: Any  # patchgate.config.Lab
    candidate: Any  # patchgate.config.Candidate
    lab_path: Path | None
    candidate_path: Path | None
    started_at: dt.datetime
    finished_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    suites_root: Path | None = None  # the folder holding suites/ (pytest's rootdir): its commit is the policy's
    verdict: str | None = None
    selection: dict[str, Any] = field(default_factory=dict)


def build_run_manifest(facts: RunFacts) -> dict[str, Any]:
    vms = vm_summaries(facts.out_dir)
    return {
        "schema": RUN_SCHEMA,
        "run_id": facts.run_id,
        "started_at": facts.started_at.isoformat(),
        "finished_at": facts.finished_at.isoformat(),
        "verdict": facts.verdict,
        "patchgate": {"version": __version__, "git": git_commit(PACKAGE_FOLDER)},
        "runner": {"host": platform.node(), "platform": platform.platform(), "argv": _argv(), "user": _os_user(),
                   "ci": ci_context(os.environ)},
        "suites": {"folder": str(facts.suites_root / "suites") if facts.suites_root else None,
                   "git": git_commit(facts.suites_root)},
        "components": component_versions(),
        "lab": {"name": facts.lab.name, **_file_entry(facts.lab_path), "git": file_commit(facts.lab_path),
                "hypervisor": facts.lab.hypervisor.kind, "remoting": facts.lab.remoting.kind,
                "secrets": facts.lab.secrets.kind, "install": _install_facts(facts.lab),
                "staging": _staging_facts(facts.lab), **kind_facts(facts.lab)},
        "candidate": {"kb": facts.candidate.kb, **_file_entry(facts.candidate_path),
                      "git": file_commit(facts.candidate_path),
                      "target_build": facts.candidate.target_build, "packages": _packages(facts.candidate)},
        "selection": facts.selection,
        "signing": signing_of(facts.lab),
        "scripts": script_hashes(),
        "cert_validation": cert_validation_of(vms),
        "vms": [{"name": vm.get("name"), "role": vm.get("role"), "ring": vm.get("ring"),
                 "snapshot": vm.get("snapshot"), "restored": vm.get("restored"), "kept": vm.get("kept"),
                 "rebooted": vm.get("rebooted"), "failed_step": vm.get("failed_step"),
                 "steps": [{k: s.get(k) for k in ("name", "started_at", "duration_s", "ok", "attempts")}
                           for s in vm.get("steps", [])]} for vm in vms],
    }


def signing_of(lab: Any) -> dict[str, Any]:
    """Whether the lab asks for signed verdicts and with which transit key: ``verify`` fails a run that should
    carry signatures and does not."""
    if not getattr(lab, "signs_verdicts", False):
        return {"required": False}
    settings = lab.secrets.settings
    return {"required": True, "key": settings.signing_key, "mount": settings.transit_mount}


def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return None


def file_commit(path: Path | None) -> dict[str, Any] | None:
    """The commit of the git checkout holding ``path`` (the lab file carries the policy) and whether that file
    differs from it or is not tracked at all; None outside a git checkout."""
    if path is None or not Path(path).is_file():
        return None
    folder = str(Path(path).resolve().parent)
    try:
        head = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", folder, "status", "--porcelain", "--", Path(path).name],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(status.strip()), "untracked": status.startswith("??")}


def _argv() -> list[str]:
    return [redactor.redact(a) for a in sys.argv]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    text = redactor.redact(json.dumps(data, indent=2, default=str)) + "\n"
    atomic_write(path, text)


def build_evidence_manifest(out_dir: Path, run_id: str | None = None, *,
                            digests: dict[str, tuple[str, int]] | None = None) -> dict[str, Any]:
    """The manifest of every evidence file; ``digests`` (relative path -> sha256, size) are files already read."""
    files = []
    for relative in evidence_files(out_dir):
        known = (digests or {}).get(relative)
        if known is None:
            path = out_dir / relative
            known = (sha256_file(path), path.stat().st_size)
        files.append({"path": relative, "sha256": known[0], "size": known[1]})
    return {"schema": EVIDENCE_SCHEMA, "run_id": run_id, "algorithm": "sha256",
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "not_evidence": list(DERIVED), "files": files}


def _still_as_written(known: dict[Path, tuple[str, int, int, int]]) -> dict[Path, tuple[str, int]]:
    """Files masked and hashed when they were written that no one changed since (size and modification time)
    and that no secret registered later could be in: path -> (sha256, size)."""
    from patchgate.secrets.redact import redactor

    trusted = {}
    for path, (digest, size, mtime_ns, secrets_known) in known.items():
        try:
            stat = path.stat()
        except OSError:
            continue
        if secrets_known == redactor.count and stat.st_size == size and stat.st_mtime_ns == mtime_ns:
            trusted[path] = (digest, size)
    return trusted


def write_evidence(facts: RunFacts, known: dict[Path, tuple[str, int, int, int]] | None = None) -> Path:
    """Write run-manifest.json, redact the folder, then write evidence-manifest.json over everything in it.

    Called once, after every other output exists; returns the evidence manifest's path. ``known``: files
    already masked and hashed by their writer (path -> sha256, size, mtime_ns, number of secrets known then);
    those still exactly as written are not read again.
    """
    out_dir = facts.out_dir
    _write_json(out_dir / RUN_MANIFEST, build_run_manifest(facts))
    from patchgate.secrets import redact_tree

    trusted = _still_as_written(known or {})
    digests = {path.relative_to(out_dir).as_posix(): entry for path, entry in trusted.items()}

    def hash_what_stays(path: Path, content: bytes) -> None:  # one read per file for redaction and hashing
        digests[path.relative_to(out_dir).as_posix()] = (hashlib.sha256(content).hexdigest(), len(content))

    # e.g. a captured log in an Allure attachment; before hashing
    redact_tree(out_dir, hash_what_stays, skip=trusted.__contains__)
    manifest = out_dir / EVIDENCE_MANIFEST
    _write_json(manifest, build_evidence_manifest(out_dir, facts.run_id, digests=digests))
    return manifest


def sign_if_enabled(out_dir: Path, lab: Any) -> list[Path]:
    """Hook for signed verdicts: when the lab asks for signing, ``patchgate.evidence.signing.sign_run(out_dir, lab)``."""
    if not getattr(lab, "signs_verdicts", True):
        return []  # without loading the signing code and its cryptography, which every run would pay for
    try:
        signing = importlib.import_module("patchgate.evidence.signing")
    except ImportError as exc:
        log.warning("signing not available: %s", exc)
        return []
    enabled = getattr(signing, "signing_enabled", None)
    if enabled is None or not enabled(lab):
        return []
    sign_run = getattr(signing, "sign_run", None)
    if sign_run is None:
        log.warning("lab %s asks for signed verdicts but this patchgate has no patchgate.evidence.signing.sign_run", lab.name)
        return []
    return list(sign_run(out_dir, lab) or [])


# ------------------------------------------------------------------------------------------------ verify

@dataclass
class VerifyResult:
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # report manifest and signature trouble
    checked: int = 0
    evidence_checked: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra or self.problems)

    def lines(self) -> list[str]:
        out = [f"CHANGED  {p}" for p in self.changed] + [f"MISSING  {p}" for p in self.missing]
        out += [f"EXTRA    {p} (not in the evidence manifest)" for p in self.extra]
        out += [f"INVALID  {p}" for p in self.problems]
        return out


def load_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / EVIDENCE_MANIFEST
    if not out_dir.is_dir():
        raise ConfigError("not a folder", file=str(out_dir))
    if not path.is_file():
        raise ConfigError(f"no {EVIDENCE_MANIFEST} in this folder (is it a patchgate output folder of a finished "
                          "run?)", file=str(out_dir))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != EVIDENCE_SCHEMA or not isinstance(data.get("files"), list):
            raise ValueError(f"schema must be {EVIDENCE_SCHEMA} with a 'files' list")
        for entry in data["files"]:
            if not {"path", "sha256"} <= set(entry):
                raise ValueError(f"file entry without path/sha256: {entry!r}")
    except (ValueError, AttributeError) as exc:
        raise ConfigError(f"not a valid evidence manifest: {exc}", file=str(path)) from None
    return data


def _safe_relative(out_dir: Path, relative: str) -> Path | None:
    """The file a manifest entry names, or None when the entry tries to leave the folder."""
    candidate = (out_dir / relative).resolve()
    try:
        candidate.relative_to(out_dir.resolve())
    except ValueError:
        return None
    return candidate


def verify_files(out_dir: Path, entries: Iterable[dict[str, Any]], result: VerifyResult) -> set[str]:
    listed: set[str] = set()
    for entry in entries:
        relative = str(entry["path"])
        listed.add(relative)
        path = _safe_relative(out_dir, relative)
        if path is None:
            result.problems.append(f"{relative}: path leaves the run folder")
            continue
        if not path.is_file():
            result.missing.append(relative)
            continue
        result.checked += 1
        if sha256_file(path) != str(entry["sha256"]).lower() or (
                "size" in entry and path.stat().st_size != int(entry["size"])):
            result.changed.append(relative)
    return listed


def verify_report(out_dir: Path, evidence_sha: str, result: VerifyResult) -> None:
    """The report manifest, when ``patchgate report`` wrote one: its files and the evidence it was built from."""
    path = out_dir / REPORT_MANIFEST
    if not path.is_file():
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["files"]
    except (ValueError, KeyError, TypeError) as exc:
        result.problems.append(f"{REPORT_MANIFEST}: not a valid report manifest ({exc})")
        return
    if data.get("evidence_manifest_sha256") != evidence_sha:
        result.problems.append(f"{REPORT_MANIFEST}: built from a different evidence manifest")
    verify_files(out_dir, entries, result)
    result.notes.append(f"report: {len(entries)} file(s) checked against {REPORT_MANIFEST}")


def signing_required(out_dir: Path, lab: str | None = None) -> str | None:
    """Why this run must carry signatures (run-manifest.json records it; the lab file, --lab or the one the run
    recorded, says so too when it can be read), or None."""
    try:
        recorded = json.loads((out_dir / RUN_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    signing = recorded.get("signing") or {}
    if signing.get("required"):
        return f"run-manifest.json records that lab '{recorded.get('lab', {}).get('name')}' signs verdicts " \
               f"with transit key {signing.get('mount')}/{signing.get('key')}"
    lab_file = lab or (recorded.get("lab") or {}).get("file")
    if not lab_file:
        return None
    try:
        from patchgate.config import load_lab, resolve_lab

        model = load_lab(resolve_lab(str(lab_file)))
    except Exception:  # noqa: BLE001 - an unreadable lab file cannot say more than the manifest did
        return None
    if model.signs_verdicts:
        return f"lab file {lab_file} signs verdicts with transit key {model.secrets.settings.signing_key}"
    return None


def verify_signatures(out_dir: Path, public_key: str | None, result: VerifyResult, *, lab: str | None = None) -> None:
    sigs = sorted(out_dir.glob("*.sig"))
    if not sigs:
        required = signing_required(out_dir, lab)
        if required:
            result.problems.append(f"no signature (gate.json.sig, evidence-manifest.json.sig) although {required}")
        elif public_key:
            result.problems.append("--public-key given but the run has no signature (*.sig)")
        else:
            result.notes.append("signatures: none (unsigned run: its lab does not sign verdicts)")
        return
    try:
        signing = importlib.import_module("patchgate.evidence.signing")
    except ImportError as exc:
        result.problems.append(f"signatures present but signing support is unavailable: {exc}")
        return
    verify_run = getattr(signing, "verify_run", None)
    try:
        if verify_run is not None:
            outcome = verify_run(out_dir, public_key=public_key, **({"lab": lab} if lab else {}))
            if outcome is False:
                result.problems.append("signature check failed")
            else:
                result.notes.append(f"signatures: {len(sigs)} verified")
            return
        if public_key is None:
            result.notes.append(f"signatures: {len(sigs)} present, not checked (pass --public-key to check)")
            return
        for sig in sigs:
            signed = sig.with_name(sig.name[: -len(".sig")])
            if not signing.verify_offline(signed, sig, public_key):
                result.problems.append(f"{sig.name}: signature does not match {signed.name}")
        result.notes.append(f"signatures: {len(sigs)} checked offline")
    except (ValueError, OSError) as exc:
        result.problems.append(f"signature check: {redactor.redact(str(exc))}")
    except Exception as exc:  # noqa: BLE001 - signing errors (Vault, key) are a failed check, never a pass
        result.problems.append(f"signature check: {exc.__class__.__name__}: {redactor.redact(str(exc))}")


def verify_dir(out_dir: Path, *, public_key: str | None = None, lab: str | None = None) -> VerifyResult:
    """Re-hash every file of the run against its evidence manifest; never raises on a mismatch."""
    out_dir = Path(out_dir)
    manifest = load_manifest(out_dir)
    result = VerifyResult()
    listed = verify_files(out_dir, manifest["files"], result)
    result.evidence_checked = result.checked
    result.extra = [p for p in evidence_files(out_dir) if p not in listed]
    evidence_sha = sha256_file(out_dir / EVIDENCE_MANIFEST)
    verify_report(out_dir, evidence_sha, result)
    verify_verdicts(out_dir, result)
    verify_signatures(out_dir, public_key, result, lab=lab)
    from patchgate.evidence.promotions import verify_promotions

    verify_promotions(out_dir, evidence_sha, result, public_key=public_key, lab=lab)
    return result


def verify_verdicts(out_dir: Path, result: VerifyResult) -> None:
    """gate.json's verdict follows from its checks, and run-manifest.json and junit.xml say the same."""
    from patchgate.model.verdicts import run_problems

    try:
        gate = json.loads((out_dir / "gate.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        result.problems.append(f"gate.json: unreadable ({exc.__class__.__name__})")
        return
    result.problems.extend(run_problems(out_dir, gate))


def manifest_digest(out_dir: Path) -> str:
    """The sha256 of the evidence manifest: stored outside the folder (CI log, release ticket), it vouches for
    every file the manifest lists."""
    load_manifest(out_dir)
    return sha256_file(out_dir / EVIDENCE_MANIFEST)
