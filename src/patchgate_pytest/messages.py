"""Failure messages a QA engineer understands: what changed, on which VM, before and after, as a small table.

``allowed`` is the other half: a change the lab's policy lets through does not fail the check, but it is written
beside the passing check in gate.json so the evidence still shows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from patchgate_pytest.invariants import note
from patchgate.model.diff import KeyedDiff, render_table
from patchgate.model.observations import VmObservation

CHANGE_HEADERS = ("item", "field", "before", "after")


def _table(rows: Iterable[Sequence[Any]] | KeyedDiff, headers: Sequence[str]) -> str:
    if isinstance(rows, KeyedDiff):
        rows = rows.rows()
    return render_table(rows, headers=headers)


def violation(obs: VmObservation, what: str, rows: Iterable[Sequence[Any]] | KeyedDiff | None = None, *,
              headers: Sequence[str] = CHANGE_HEADERS, hint: str = "") -> str:
    """One headline naming the VM, then a before/after table (not a dump)."""
    lines = [f"{obs.vm.name} ({obs.vm.role}): {what}"]
    if rows is not None:
        lines.append(_table(rows, headers))
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def before_after(obs: VmObservation, what: str, pairs: Iterable[tuple[str, Any, Any]], hint: str = "") -> str:
    """A table of (signal, before, after) rows."""
    return violation(obs, what, [(name, before, after) for name, before, after in pairs],
                     headers=("signal", "before", "after"), hint=hint)


def allowed(obs: VmObservation, what: str, rows: Iterable[Sequence[Any]] | KeyedDiff, *,
            headers: Sequence[str] = CHANGE_HEADERS) -> None:
    """Record changes an allowlist let through; nothing is recorded when there are none."""
    rows = rows if isinstance(rows, KeyedDiff) else list(rows)
    if rows:
        note(violation(obs, f"allowed by the lab policy: {what}", rows, headers=headers))


def noise_seen(obs: VmObservation, what: str, rows: Iterable[Sequence[Any]] | KeyedDiff, *,
               headers: Sequence[str] = CHANGE_HEADERS) -> None:
    """Record what a check ignored as real-world noise (docs/invariants.md, "Noise the checks ignore"), or could
    not judge fully, beside the passing check; nothing is recorded when there is none."""
    rows = rows if isinstance(rows, KeyedDiff) else list(rows)
    if rows:
        note(violation(obs, f"ignored as noise: {what}", rows, headers=headers))
