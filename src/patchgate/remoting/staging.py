"""Stage a candidate's packages on a VM, prove they arrived intact, install them.

A VM gets each package in one of two ways: it **pulls** it (the ``fetch`` op downloads it from a
:class:`PackageSource`, the run's content server or the lab's share, resumable, and hashes it on the VM), or
patchgate **pushes** it through the session (``stage-prepare``, then the session's ``copy_file``), for labs whose
VMs cannot reach anything. The op scripts in ``remoting/scripts/`` do the remote work; each starts with ``# patchgate-op: <name>`` so
the twin can route it, takes named parameters only, and prints ONE JSON document (the contracts below and
in docs/remoting.md; the twin prints exactly these shapes):

* ``stage-prepare`` (Path)                -> ``{"Path": str, "Exists": true}``
* ``fetch`` (Url, Destination, Sha256, Size, Fingerprint, TimeoutSeconds, Keep[, ShareUser, SharePassword]) -> ``{"Path": str, "Sha256": "UPPER HEX"
  | null, "Bytes": int, "Skipped": bool, "Method": str, "Resumes": int, "Log": [str]}``
* ``install``       (PackagePath, Sha256) -> ``{"PackagePath": str, "RestartNeeded": bool, "ExitCode": int,
  "Log": [str], "Staged": [{"Path": str, "Sha256": "UPPER HEX" | null}]}`` and, when the install fails, an
  error record as well.

The hash is checked twice: locally before copying (the candidate file on disk is the one the descriptor
names) and ON THE VM by the install op itself, which hashes every staged file and installs nothing unless each
is the approved one (what is installed is what was approved, with no gap between the check and the install).
"""

from __future__ import annotations

import functools
import inspect
import json
import ntpath
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from patchgate.config.candidate import Candidate
from patchgate.errors import InstallError, LabError, LabTimeout, StagingError
from patchgate.evidence.hashing import package_sha256
from patchgate.remoting.base import RemoteSession, Script, ScriptResult
from patchgate.secrets.base import Credentials, credential_pair

OP_STAGE_PREPARE = "stage-prepare"
OP_INSTALL = "install"
OP_FETCH = "fetch"
OP_MARKER_PREFIX = "# patchgate-op: "

# Key -> accepted JSON types of each op's document (None stands for JSON null).
STAGE_PREPARE_CONTRACT: dict[str, tuple[type | None, ...]] = {"Path": (str,), "Exists": (bool,)}
INSTALL_CONTRACT: dict[str, tuple[type | None, ...]] = {
    "PackagePath": (str,), "RestartNeeded": (bool,), "ExitCode": (int,), "Log": (list, str, None),
    "Staged": (list, dict)}  # ConvertTo-Json prints a one-element array as the element itself
FETCH_CONTRACT: dict[str, tuple[type | None, ...]] = {
    "Path": (str,), "Sha256": (str, None), "Bytes": (int,), "Skipped": (bool,), "Method": (str,),
    "Resumes": (int,), "Log": (list, str, None)}

# CRYPT_E_HASH_VALUE: the install op refused, a staged file being missing or not the approved one.
REFUSED_HASH = -2146889721

# DISM / MSI result codes that mean "installed" (value: whether a restart is pending).
# 3010 ERROR_SUCCESS_REBOOT_REQUIRED, 1641 ERROR_SUCCESS_REBOOT_INITIATED, 3011 ERROR_SUCCESS_RESTART_REQUIRED.
SUCCESS_CODES: dict[int, bool] = {0: False, 3010: True, 1641: True, 3011: True}

DEFAULT_STAGING_DIR = r"C:\ProgramData\patchgate\staging"


@dataclass(frozen=True)
class InstallResult:
    """What the install left behind; ``restart_needed`` drives the (recorded) reboot."""

    kb: str
    package_path: str
    exit_code: int
    restart_needed: bool
    output: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    staged_paths: list[str] = field(default_factory=list)
    packages: list[dict[str, Any]] = field(default_factory=list)  # Get-WindowsPackage -Online state after install
    fetched: list["Fetched"] = field(default_factory=list)  # how each package got onto the VM, when it pulled them


@dataclass(frozen=True)
class Fetched:
    """What the ``fetch`` op did for one package (the evidence of a resumed or skipped download)."""

    name: str
    method: str  # present | bits | http | copy
    bytes: int  # downloaded by this op
    resumes: int

    @property
    def skipped(self) -> bool:
        return self.method == "present"


def describe_fetched(fetched: list[Fetched]) -> str:
    """One line for the install step's detail: how many packages were pulled, skipped and resumed."""
    if not fetched:
        return "pushed"
    pulled = [f for f in fetched if not f.skipped]
    parts = [f"pulled {len(pulled)} package(s), {sum(f.bytes for f in pulled)} bytes"]
    if len(pulled) < len(fetched):
        parts.append(f"{len(fetched) - len(pulled)} already on the VM")
    resumes = sum(f.resumes for f in fetched)
    if resumes:
        parts.append(f"{resumes} resumed download(s)")
    return ", ".join(parts)


class Offered(Protocol):
    """Where one package is and what the VM checks: its URL, SHA-256, size and the server certificate's pin, and
    for a share the account that reads it (None: the VM's own)."""

    @property
    def url(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def credentials(self) -> Credentials | None: ...


class PackageSource(Protocol):
    """Where a VM pulls a package from (patchgate.remoting.content.ContentServer, a share)."""

    def offer(self, path: Path, sha256: str, *, vm: str | None = None) -> Offered:
        """The URL (and certificate pin) of the package at ``path`` whose SHA-256 is ``sha256``."""


@functools.cache
def load_op_script(op: str) -> str:
    """The text of ``remoting/scripts/<op>.ps1`` (packaged with patchgate)."""
    text = (resources.files("patchgate.remoting") / "scripts" / f"{op}.ps1").read_text(encoding="utf-8")
    if not text.startswith(OP_MARKER_PREFIX + op):
        raise RuntimeError(f"remoting/scripts/{op}.ps1 must start with '{OP_MARKER_PREFIX}{op}'")
    return text


def op_script(op: str, **parameters: Any) -> Script:
    return Script(name=op, body=load_op_script(op), parameters=parameters)


def _vm(session: RemoteSession) -> str:
    return str(getattr(session, "vm", None) or session.host)


def parse_document(result: ScriptResult, op: str, contract: dict[str, tuple[type | None, ...]],
                   vm: str, error: type[LabError]) -> dict[str, Any]:
    """The op's single JSON document, checked against its contract; anything else names the op and VM."""
    text = result.text.strip()
    if not text:
        detail = "; ".join(result.errors) or "no output"
        raise error(f"op '{op}' printed nothing: {detail}", vm=vm, host=vm)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"op '{op}' printed something that is not one JSON document ({exc.msg} at char {exc.pos}): "
                    f"{text[:200]!r}", vm=vm) from None
    if not isinstance(doc, dict):
        raise error(f"op '{op}' printed a JSON {type(doc).__name__}, expected an object", vm=vm)
    for key, kinds in contract.items():
        if key not in doc:
            raise error(f"op '{op}' printed no '{key}' (keys: {sorted(doc)})", vm=vm)
        value = doc[key]
        ok = any((value is None) if k is None else
                 (isinstance(value, k) and not (k is int and isinstance(value, bool))) for k in kinds)
        if not ok:
            raise error(f"op '{op}' printed {key}={value!r}, expected "
                        f"{' or '.join('null' if k is None else k.__name__ for k in kinds)}", vm=vm)
    return doc


class _Budget:
    """One deadline shared by every step of staging and install."""

    def __init__(self, timeout: float | None, vm: str, kb: str, what: str = "staging and installing") -> None:
        self.deadline = time.monotonic() + timeout if timeout else None
        self.timeout, self.vm, self.kb, self.what = timeout, vm, kb, what

    def left(self, step: str) -> float | None:
        if self.deadline is None:
            return None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise LabTimeout(f"{self.what} {self.kb} ran past {self.timeout:g}s (at {step})",
                             vm=self.vm, step=step)
        return remaining


def checked_packages(candidate: Candidate, vm: str) -> list[Path]:
    """The candidate's package files on this machine, each hashed (by chunks) against the candidate."""
    locals_ = []
    for package in candidate.packages:
        local = candidate.package_path(package)
        if not local.is_file():
            raise StagingError(f"package file {local} named by {candidate.kb} does not exist", vm=vm, step="stage")
        local_hash = package_sha256(local)  # hashed once per run (evidence.hashing)
        if local_hash != package.sha256:
            raise StagingError(f"package file {local.name} does not match the candidate: expected sha256 "
                               f"{package.sha256}, the local file has {local_hash}", vm=vm, step="stage")
        locals_.append(local)
    return locals_


def _staging_root(session: RemoteSession, candidate: Candidate, staging_dir: str | None) -> str:
    return ntpath.join(staging_dir or getattr(session, "staging_dir", None) or DEFAULT_STAGING_DIR, candidate.kb)


def stage(session: RemoteSession, candidate: Candidate, *, staging_dir: str | None = None,
          timeout: float | None = None, _budget: _Budget | None = None) -> list[str]:
    """Copy every package to ``<staging_dir>\\<KB>\\``; returns the paths. The install op checks their SHA-256
    on the VM; the local files are checked against the candidate here, before anything is copied."""
    vm = _vm(session)
    budget = _budget or _Budget(timeout, vm, candidate.kb)
    root = _staging_root(session, candidate, staging_dir)
    locals_ = checked_packages(candidate, vm)
    prepared = parse_document(session.run(op_script(OP_STAGE_PREPARE, Path=root), timeout=budget.left("stage")),
                              OP_STAGE_PREPARE, STAGE_PREPARE_CONTRACT, vm, StagingError)
    folder = prepared["Path"] or root
    staged: list[str] = []
    for local in locals_:
        remote = ntpath.join(folder, local.name)
        try:
            if "timeout" in inspect.signature(session.copy_file).parameters:
                copied = session.copy_file(local, remote, timeout=budget.left("stage"))  # type: ignore[call-arg]
            else:
                copied = session.copy_file(local, remote)
        except StagingError:
            raise
        except LabError as exc:
            if isinstance(exc, LabTimeout):
                raise
            raise StagingError(f"copying {local.name} to {remote} failed: {exc.detail}", vm=vm,
                               step="stage") from exc
        staged.append(str(copied or remote))
    return staged


def fetch(session: RemoteSession, candidate: Candidate, source: PackageSource, *, staging_dir: str | None = None,
          timeout: float | None = None, _budget: _Budget | None = None,
          fetched: list[Fetched] | None = None) -> list[str]:
    """Have the VM pull every package into ``<staging_dir>\\<KB>\\`` (the ``fetch`` op: one pipeline per
    package, resumable, SHA-256 checked on the VM; a file already there with that hash is not fetched again);
    returns the paths (and appends to ``fetched`` what each op did). A download that is not the approved file is
    refused here, before any install."""
    vm = _vm(session)
    budget = _budget or _Budget(timeout, vm, candidate.kb, "staging")
    root = _staging_root(session, candidate, staging_dir)
    staged: list[str] = []
    locals_ = checked_packages(candidate, vm)
    keep = [local.name for local in locals_]  # the folder holds these and nothing else (a checkpoint CU's DISM)
    for local, package in zip(locals_, candidate.packages):
        offer = source.offer(local, package.sha256, vm=vm)
        remote = ntpath.join(root, local.name)
        left = budget.left("stage")
        # Size as text: PSRP carries a Python int as a 32-bit I32, and packages pass 2 GiB ([long] binds the text)
        account = offer.credentials
        script = op_script(OP_FETCH, Url=offer.url, Destination=remote, Sha256=offer.sha256,
                           Size=str(offer.size), Fingerprint=offer.fingerprint,
                           TimeoutSeconds=max(1, int(left or 1800)), Keep=keep, **_share_account(account))
        try:
            result = session.run(script, timeout=left)
        except LabTimeout as exc:
            raise LabTimeout(f"fetching {local.name} onto VM {vm} ran past the stage timeout "
                             f"({budget.timeout or 0:g}s, timeouts.stage): {exc.detail}", vm=vm,
                             step="stage") from exc
        if not result.text.strip() and not offer.fingerprint:  # a share: the VM read it (or not) on its own
            why = "; ".join(result.errors) or "no output"
            who = f"as {account.username}" if account is not None else "with the VM's own account"
            raise StagingError(f"VM {vm} could not read {local.name} from the share at {offer.url} {who} "
                               f"(staging.share in the lab file): {why}", vm=vm, step="stage")
        doc = parse_document(result, OP_FETCH, FETCH_CONTRACT, vm, StagingError)
        log_lines = _lines(doc["Log"])
        actual = str(doc["Sha256"] or "").lower()
        if actual != package.sha256:
            reason = log_lines[-1] if log_lines else "the file on the VM is not the approved one"
            raise StagingError(f"sha256 mismatch for {local.name} fetched to VM {vm} at {remote}: expected "
                               f"{package.sha256}, actual {actual or 'none (the file is not there)'}; refusing to "
                               f"install ({reason})", vm=vm, step="stage")
        staged.append(str(doc["Path"] or remote))
        if fetched is not None:
            fetched.append(Fetched(name=local.name, method=str(doc["Method"]), bytes=int(doc["Bytes"]),
                                   resumes=int(doc["Resumes"])))
    return staged


def _share_account(credentials: Credentials | None) -> dict[str, str]:
    """The fetch op's ShareUser / SharePassword: parameters of the pipeline (never a command line, which
    process-creation auditing can record), from which the op builds the PSCredential on the VM."""
    if credentials is None:
        return {}
    username, password = credential_pair(credentials)
    return {"ShareUser": username, "SharePassword": password}


def _lines(value: Any) -> list[str]:
    """A ``Log`` value as lines (ConvertTo-Json prints a one-line array as the string itself)."""
    return [str(line) for line in value] if isinstance(value, list) else ([str(value)] if value else [])


def _check_staged(doc: dict[str, Any], expected: dict[str, str], vm: str) -> None:
    """Every staged file the install op hashed must be the approved one; it refuses to install otherwise."""
    entries = doc["Staged"] if isinstance(doc["Staged"], list) else [doc["Staged"]]
    seen = {ntpath.basename(str(e.get("Path") or "")).lower(): e for e in entries if isinstance(e, dict)}
    for name, sha in expected.items():
        entry = seen.get(name.lower())
        if entry is None:
            raise StagingError(f"op 'install' did not report {name} among the staged files on {vm}", vm=vm,
                               step="stage")
        actual = str(entry.get("Sha256") or "").lower()
        if actual != sha:
            where = entry.get("Path") or name
            raise StagingError(f"sha256 mismatch for {name} on VM {vm} at {where}: expected {sha}, actual "
                               f"{actual or 'none (the file is not there)'}; refusing to install",
                               vm=vm, step="stage")


def install(session: RemoteSession, package_path: str, *, kb: str, expected: dict[str, str],
            timeout: float | None = None) -> InstallResult:
    """Run the ``install`` op once: it hashes the staged files (``expected``: file name -> sha256) and installs
    only when each is the approved one; then read RestartNeeded / the exit code (3010 semantics)."""
    vm = _vm(session)
    result = session.run(op_script(OP_INSTALL, PackagePath=package_path, Sha256=dict(expected)), timeout=timeout)
    doc = parse_document(result, OP_INSTALL, INSTALL_CONTRACT, vm, InstallError)
    _check_staged(doc, expected, vm)
    log_lines = _lines(doc["Log"])
    code = int(doc["ExitCode"])
    if code == REFUSED_HASH:
        raise StagingError(f"op 'install' refused to install {kb} on VM {vm}: "
                           f"{log_lines[-1] if log_lines else 'a staged file is not the approved one'}",
                           vm=vm, step="stage")
    if code not in SUCCESS_CODES:
        detail = "; ".join(result.errors) or (log_lines[-1] if log_lines else "no detail")
        raise InstallError(f"installing {kb} from {package_path} failed on VM {vm}: exit code {code} "
                           f"(0x{code & 0xFFFFFFFF:08X}): {detail}", vm=vm, step="install")
    raw = doc.get("Packages") or []
    packages = [p for p in (raw if isinstance(raw, list) else [raw]) if isinstance(p, dict)]  # 5.1 collapses one
    return InstallResult(kb=kb, package_path=str(doc["PackagePath"]), exit_code=code,
                         restart_needed=bool(doc["RestartNeeded"]) or SUCCESS_CODES[code],
                         output=list(result.output), log=log_lines, packages=packages)


def stage_and_install(session: RemoteSession, candidate: Candidate, timeout: float | None = None, *,
                      staging_dir: str | None = None, source: PackageSource | None = None,
                      stage_timeout: float | None = None) -> InstallResult:
    """Stage (pull from ``source``, or push without one), verify, install. With ``stage_timeout`` staging has
    that deadline and the install its own ``timeout``; without it, one deadline covers both. DISM is given the
    target cumulative update's file even when checkpoint cumulative updates come with it: it finds them in the
    same folder ("pass the target", Microsoft,
    https://learn.microsoft.com/windows/deployment/update/catalog-checkpoint-cumulative-updates)."""
    vm = _vm(session)
    budget = _Budget(timeout, vm, candidate.kb)
    stage_budget = budget if stage_timeout is None else _Budget(stage_timeout, vm, candidate.kb, "staging")
    fetched: list[Fetched] = []
    if source is not None:
        staged = fetch(session, candidate, source, staging_dir=staging_dir, _budget=stage_budget, fetched=fetched)
    else:
        staged = stage(session, candidate, staging_dir=staging_dir, _budget=stage_budget)
    if stage_timeout is not None:
        budget = _Budget(timeout, vm, candidate.kb, "installing")  # the install's own deadline starts now
    target = candidate.package_path(candidate.target_package).name
    package_path = next(path for path in staged if ntpath.basename(path) == target)
    expected = {candidate.package_path(package).name: package.sha256 for package in candidate.packages}
    result = install(session, package_path, kb=candidate.kb, expected=expected, timeout=budget.left("install"))
    return InstallResult(kb=result.kb, package_path=result.package_path, exit_code=result.exit_code,
                         restart_needed=result.restart_needed, output=result.output, log=result.log,
                         staged_paths=staged, packages=result.packages, fetched=fetched)
