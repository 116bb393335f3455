"""A run's output folder holds that run's evidence and nothing else.

Everything in the folder is hashed into the evidence manifest and every Allure result in it is read by the report,
so writing a run into a folder that already holds files would mix two runs (old results shown as retries, a stray
file vouched for by the new manifest). A run therefore refuses a folder that is not empty (exit 4): pick a new
``--out``, or remove the old run first (docs/evidence.md, "The output folder").
"""

from __future__ import annotations

from pathlib import Path

from patchgate.errors import ConfigError


def require_fresh_out_dir(out_dir: Path) -> None:
    """Refuse an output folder that exists and is not empty, naming it and what it holds."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConfigError("the output folder is a file, not a folder", file=str(out_dir))
    held = sorted(p.name for p in out_dir.iterdir())
    if held:
        shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
        kind = "another run's evidence" if "gate.json" in held or "allure-results" in held else "files"
        raise ConfigError(f"the output folder already holds {kind} ({shown}); a run writes only into a new or "
                          "empty folder: choose another --out or remove this one", file=str(out_dir))
