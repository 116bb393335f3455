"""Run catalogue behaviours through the real gate: one `patchgate validate` per KB, every expected image a VM.

Each run is the suites as plain pytest runs them, in a process of its own (support.suite_runs), on a generated twin
lab with the ``inprocess`` remoting kind, so a KB on eight images costs one run of a second or two. Candidate files and stand-in
packages are generated from the behaviour (synthetic KBs have no candidate in candidates/).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from patchgate_twin.behaviours import Behaviour
from support.suite_runs import run_suites
from patchgate_twin.catalog import Catalog

PATCHGATE = str(Path(sys.executable).with_name("patchgate"))
ROOT = Path(__file__).resolve().parents[2]

# image class -> the lab role a VM with that image plays (suites select by role)
ROLE_BY_CLASS = {"member": "member", "wsus-server": "wsus-server", "wsus-hotpatch": "wsus-server"}
CANDIDATE_CLASS = {"synthetic": "other"}


def vm_name(image: str) -> str:
    """A short VM name that still says which image it runs (ws2025-dc-hotpatch-oct2025 -> dc-hotpatch-oct2025)."""
    return image.removeprefix("ws2025-")


def role_for(catalog: Catalog, image: str) -> str:
    return ROLE_BY_CLASS.get(catalog.image_class(image) or "", "hotpatch-member")


def write_candidate(folder: Path, behaviour: Behaviour, target_build: str) -> Path:
    """A candidate file and its twin stand-in package (`kb: KBxxxx`, sha256 beside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    package = folder / f"{behaviour.kb.lower()}.twin.msu"
    package.write_text(f"kb: {behaviour.kb}\n", encoding="utf-8")
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    url = behaviour.sources[0] if behaviour.sources and not behaviour.synthetic else (
        f"https://patchgate.invalid/synthetic/{behaviour.kb}")
    data = {
        "kb": behaviour.kb, "title": behaviour.title,
        "classification": CANDIDATE_CLASS.get(behaviour.classification, behaviour.classification),
        "target_build": target_build, "release_date": str(behaviour.released or "2025-10-25"),
        "packages": [{"file": package.name, "sha256": digest}],
        "references": {"kb_article": url},
    }
    path = folder / f"{behaviour.kb}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


PSRP = {"kind": "psrp", "settings": {"ssl": False, "auth": "basic", "encryption": "never", "connect_timeout": 10,
                                     "read_timeout": 30, "operation_timeout": 20}}


def write_lab(folder: Path, catalog: Catalog, images: list[str], *, name: str = "catalogue",
              policy: dict[str, Any] | None = None, faults: dict[str, list[str]] | None = None,
              psrp: bool = False, seed: int | None = None, clock_skew: float | None = None) -> Path:
    """A twin lab with one VM per image and short timeouts (the twin needs no waiting).

    Remoting is ``inprocess`` (fast) unless ``psrp``: the in-process kind does not bound a hanging install by the
    lab's install timeout, the WSMan endpoints do, so behaviours with ``install_hangs`` run over PSRP. ``seed``
    makes the twin noisy (``noise: realistic`` with that seed); without it the twin is quiet. ``clock_skew``: every
    guest's clock is that many seconds off the controller's.
    """
    folder.mkdir(parents=True, exist_ok=True)
    vms = []
    for image in images:
        vm: dict[str, Any] = {"name": vm_name(image), "role": role_for(catalog, image), "snapshot": "baseline",
                              "image": image}
        if faults and image in faults:
            vm["faults"] = faults[image]
        vms.append(vm)
    data: dict[str, Any] = {
        "name": name,
        "hypervisor": {"kind": "twin"} if seed is None else {
            "kind": "twin", "settings": {"noise": "realistic", "seed": seed}},
        "remoting": PSRP if psrp else {"kind": "inprocess"},
        "secrets": {"kind": "twin"}, "vms": vms,
        "timeouts": {"ready": 20, "install": 4, "reboot": 4, "capture": 30, "revert": 20, "settle": 10},
        "retries": {"count": 0, "backoff": 0},
    }
    if policy is not None:
        data["policy"] = policy
    if clock_skew is not None:
        data["hypervisor"].setdefault("settings", {})["clock_skew"] = clock_skew
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Run:
    """One finished `patchgate validate`: exit code, gate.json and the output for assertion messages."""

    kb: str
    returncode: int
    gate: dict[str, Any]
    output: str
    out_dir: Path

    def checks(self, vm: str) -> list[dict[str, Any]]:
        return [c for c in self.gate.get("checks", []) if c["vm"] == vm]

    def failed(self, vm: str) -> set[str]:
        return {c["invariant"] for c in self.checks(vm) if c["status"] == "failed"}

    def verdict(self, vm: str) -> str:
        """The verdict this VM alone would get: broken -> inconclusive, failed -> block, else approve."""
        statuses = {c["status"] for c in self.checks(vm)}
        if "broken" in statuses or not statuses & {"passed", "failed", "waived"}:
            return "inconclusive"
        return "block" if "failed" in statuses else "approve"

    def message(self, vm: str, invariant: str) -> str:
        return next((c["message"] for c in self.checks(vm) if c["invariant"] == invariant), "")

    def explain(self, vm: str) -> str:
        rows = [f"  {c['status']:8} {c['invariant']:32} {c['message'][:400]}" for c in self.checks(vm)
                if c["status"] not in ("passed", "skipped")]
        return f"{self.kb} on {vm}:\n" + "\n".join(rows) + "\n--- output tail ---\n" + self.output[-1500:]


def run_validate(lab: Path, candidate: Path, out: Path, *, today: str | None = None,
                 pycache: Path | None = None, extra: list[str] | None = None, cli: bool = False) -> Run:
    """One run of the gate, with its own state directory: the suites as plain pytest runs them, in a fresh process
    forked from a warm one (support.suite_runs), or ``cli``: `patchgate validate` as a user runs it.

    The suites' compiled (assertion-rewritten) modules are cached under ``pycache`` rather than rebuilt by every
    run. ``extra``: more options for the suites (or for `patchgate validate`)."""
    env = dict(os.environ, PATCHGATE_STATE_DIR=str(out.parent / f"{out.name}-state"))
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if today:
        env["PATCHGATE_TODAY"] = today
    finished = run_suites(lab, candidate, out, env, extra=extra, pycache=pycache, cli=cli)
    gate_file = out / "gate.json"
    gate = json.loads(gate_file.read_text(encoding="utf-8")) if gate_file.is_file() else {}
    kb = yaml.safe_load(candidate.read_text(encoding="utf-8"))["kb"]
    return Run(kb=kb, returncode=finished.returncode, gate=gate, output=finished.output, out_dir=out)


def target_build(catalog: Catalog, behaviour: Behaviour, images: list[str]) -> str:
    """The build the candidate targets: the KB's own, or for a synthetic KB the (shared) build of its images."""
    if behaviour.build:
        return behaviour.build
    builds = {catalog.image(image).build for image in images}
    if len(builds) != 1:
        raise ValueError(f"{behaviour.kb}: synthetic behaviour on images with different builds {sorted(builds)}")
    return builds.pop()


@dataclass
class CatalogueRuns:
    """Every behaviour that has `expect` rows, run once on all of its images; results cached for the session."""

    catalog: Catalog
    root: Path
    runs: dict[str, Run] = field(default_factory=dict)
    seed: int | None = None  # a noisy twin with this seed (else quiet)
    clock_skew: float | None = None  # every guest's clock this many seconds off the controller's

    def plan(self) -> list[Behaviour]:
        return [b for b in self.catalog.behaviours() if b.expect]

    def run_one(self, behaviour: Behaviour) -> Run:
        images = sorted(behaviour.expect)
        folder = self.root / behaviour.kb
        lab = write_lab(folder, self.catalog, images, name=f"cat-{behaviour.kb.lower()}",
                        psrp=behaviour.install_hangs, seed=self.seed, clock_skew=self.clock_skew)
        candidate = write_candidate(folder / "candidate", behaviour,
                                    target_build(self.catalog, behaviour, images))
        return run_validate(lab, candidate, folder / "out", pycache=self.root / "pycache")

    def run_all(self, workers: int = 3) -> dict[str, Run]:
        todo = [b for b in self.plan() if b.kb not in self.runs]
        if todo:  # the first run fills the compiled-module cache the others then share
            first = todo.pop(0)
            self.runs[first.kb] = self.run_one(first)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for run in pool.map(self.run_one, todo):
                self.runs[run.kb] = run
        return self.runs
