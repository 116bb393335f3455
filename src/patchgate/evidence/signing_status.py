"""Whether a run folder is signed, and by which key, in one line for the console, the summary and the report.

Read from the signature files and run-manifest.json alone (no Vault, no cryptography): it says what the folder
claims; ``patchgate verify`` is what checks the signatures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SIGNED_FILES = ("gate.json", "evidence-manifest.json")


@dataclass(frozen=True)
class SigningStatus:
    state: str  # signed | unsigned | missing (the lab signs verdicts, the signatures are not there)
    text: str


def _required(out_dir: Path) -> dict | None:
    try:
        manifest = json.loads((out_dir / "run-manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    signing = manifest.get("signing") or {}
    return signing if signing.get("required") else None


def signing_status(out_dir: Path) -> SigningStatus:
    keys: set[str] = set()
    signed = []
    for name in SIGNED_FILES:
        try:
            data = json.loads((out_dir / f"{name}.sig").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        signed.append(name)
        keys.add(f"{data.get('mount', 'transit')}/{data.get('key')} v{data.get('key_version')}")
    required = _required(out_dir)
    if signed and len(signed) == len(SIGNED_FILES):
        return SigningStatus("signed", f"signed ({', '.join(signed)}) with Vault transit key {', '.join(sorted(keys))}"
                             " (check: patchgate verify)")
    if required or signed:
        key = f"{required.get('mount')}/{required.get('key')}" if required else ", ".join(sorted(keys))
        have = f"only {', '.join(signed)} signed" if signed else "no signature was written"
        return SigningStatus("missing", f"NOT SIGNED: the lab signs verdicts with transit key {key}, but {have}")
    return SigningStatus("unsigned", "unsigned (the lab does not sign verdicts)")
