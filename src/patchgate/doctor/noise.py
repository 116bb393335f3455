"""``patchgate doctor --noise``: the suites' invariants judged on a restart without an install, the lab's own
noise (docs/doctor.md, "The noise probe"). The judging runs in a child process (``patchgate_pytest.offline``), as the
suites do: the engine never imports them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from patchgate.model.diff import render_table
from patchgate.doctor.checks import Check
from patchgate.errors import LabError
from patchgate.run.lifecycle import VmLifecycle
from patchgate.secrets.redact import redactor


def noise_outcomes(lifecycle: VmLifecycle) -> dict[str, dict[str, str]] | None:
    """The suites' invariants judged on the noise probe's two captures (a child process, as the suites run:
    the engine never imports them), or None when the probe did not get both captures."""
    import subprocess
    import tempfile

    obs = lifecycle.obs
    restarted = getattr(lifecycle, "restarted_at", None)
    root = Path.cwd()
    if obs.baseline_raw is None or obs.post_raw is None or restarted is None or obs.error is not None:
        return None
    if not (root / "suites").is_dir():
        raise LabError("doctor --noise judges with the suites: run it in the folder that holds suites/")
    document = {"vm": obs.vm.name, "role": obs.vm.role, "snapshot": obs.vm.snapshot,
                "baseline_raw": obs.baseline_raw, "post_raw": obs.post_raw,
                "restarted_at": restarted.isoformat(), "clock_offsets": obs.clock_offsets}
    with tempfile.TemporaryDirectory(prefix="patchgate-noise-") as folder:
        path = Path(folder) / "observation.json"  # the folder is the user's alone (mkdtemp: mode 0700)
        path.write_text(json.dumps(document), encoding="utf-8")
        child = subprocess.run([sys.executable, "-m", "patchgate_pytest.offline", str(path)], cwd=root,
                               capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise LabError(f"judging the noise probe failed: {redactor.redact(child.stderr.strip()[-500:])}",
                       vm=obs.vm.name, step="noise")
    outcomes: dict[str, dict[str, str]] = json.loads(child.stdout)
    return outcomes


NOISE_ADVICE = ("the lab's own noise: a run would fail this check without any update; fix the snapshot, allow it "
                "in the lab policy, or run validate with a control run (lab `control: reboot`, docs/invariants.md)")


def noise_checks(outcomes: dict[str, dict[str, str]] | None) -> list[Check]:
    if outcomes is None:
        return [Check("noise", "noise probe", "fail", "the restart or a capture did not finish (see above)",
                      "fix the failed step above, then run --noise again")]
    failed = {inv: o for inv, o in outcomes.items() if o["status"] == "failed"}
    checks = [Check("noise", "noise probe", "warn" if failed else "ok",
                    f"restart without an install: {len(failed)} of "
                    f"{sum(o['status'] != 'not judged' for o in outcomes.values())} invariant(s) would fail",
                    NOISE_ADVICE if failed else "")]
    checks += [Check("noise", inv, "warn", o["detail"].splitlines()[0], NOISE_ADVICE) for inv, o in failed.items()]
    return checks


def print_noise(noise: dict[str, dict[str, dict[str, str]] | None]) -> None:
    """One table per VM: each invariant and what it would conclude on a restart without an install."""
    for vm, outcomes in noise.items():
        print(f"\nnoise probe {vm}: restart without an install")
        if outcomes is None:
            print("  (not judged: the probe did not finish)")
            continue
        rows = [(inv, o["status"]) for inv, o in sorted(outcomes.items())]
        print(render_table(rows, headers=("invariant", "on a restart without an install"), max_rows=100))
        for inv, o in sorted(outcomes.items()):
            if o["status"] == "failed":
                print(f"\n{inv}:\n{o['detail']}")
