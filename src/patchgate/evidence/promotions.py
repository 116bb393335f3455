"""Promotion records beside a run (docs/rings.md, "The promotion record").

``patchgate promote`` writes ``promotions/<ring>.json`` and lists it in ``promotions/manifest.json``, the run's
append-only appendix to its evidence: each entry's sha256 and size, and the sha256 of the evidence manifest the
promotions were made from. The evidence manifest itself is never rewritten, so its signature and the digest a CI
log stored stay valid. When the lab signs verdicts, the appendix is signed too (``promotions/manifest.json.sig``).
``patchgate verify`` checks the records against the appendix, the appendix against the evidence manifest, and its
signature; a record the appendix does not list is EXTRA.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from patchgate.atomic import atomic_write
from patchgate.evidence.hashing import sha256_file
from patchgate.secrets.redact import redactor

FOLDER = "promotions"
APPENDIX = f"{FOLDER}/manifest.json"
APPENDIX_SCHEMA = "patchgate.evidence.promotions/1"
RECORD_SCHEMA = "patchgate.promotion/1"


def record_path(out_dir: Path, ring: str) -> Path:
    return out_dir / FOLDER / f"{ring}.json"


def _load_appendix(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / APPENDIX
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema") != APPENDIX_SCHEMA or not isinstance(data.get("files"), list):
        raise ValueError(f"schema must be {APPENDIX_SCHEMA} with a 'files' list")
    return data


def write_record(out_dir: Path, ring: str, record: dict[str, Any], *, evidence_sha256: str) -> Path:
    """Write the record and append it to the appendix; returns the appendix (to sign when the lab signs)."""
    path = record_path(out_dir, ring)
    path.parent.mkdir(exist_ok=True)
    atomic_write(path, redactor.redact(json.dumps(record, indent=2, default=str)) + "\n")
    appendix = _load_appendix(out_dir) or {"schema": APPENDIX_SCHEMA, "evidence_manifest_sha256": evidence_sha256,
                                           "files": []}
    relative = path.relative_to(out_dir).as_posix()
    appendix["files"] = [e for e in appendix["files"] if e.get("path") != relative] + [
        {"path": relative, "sha256": sha256_file(path), "size": path.stat().st_size,
         "appended_at": dt.datetime.now(dt.UTC).isoformat()}]
    atomic_write(out_dir / APPENDIX, json.dumps(appendix, indent=2) + "\n")
    return out_dir / APPENDIX


def verify_promotions(out_dir: Path, evidence_sha256: str, result: Any, *, public_key: str | None,
                      lab: str | None) -> None:
    """Check the appendix (when there is one) into ``result`` (a manifests.VerifyResult)."""
    from patchgate.evidence.manifests import signing_required, verify_files

    folder = out_dir / FOLDER
    try:
        appendix = _load_appendix(out_dir)
    except (ValueError, OSError) as exc:
        result.problems.append(f"{APPENDIX}: not a valid promotions manifest ({exc})")
        return
    found = sorted(p.relative_to(out_dir).as_posix() for p in folder.rglob("*") if p.is_file()) \
        if folder.is_dir() else []
    if appendix is None:
        result.extra += [p for p in found]
        return
    if appendix.get("evidence_manifest_sha256") != evidence_sha256:
        result.problems.append(f"{APPENDIX}: made for a different evidence manifest")
    listed = verify_files(out_dir, appendix["files"], result)
    own = {APPENDIX, APPENDIX + ".sig"}
    result.extra += [p for p in found if p not in listed and p not in own]
    signature = out_dir / (APPENDIX + ".sig")
    if not signature.is_file():
        required = signing_required(out_dir, lab)
        if required:
            result.problems.append(f"{APPENDIX}: no signature ({APPENDIX}.sig) although {required}")
    else:
        from patchgate.evidence.signing import verify_run

        try:
            verify_run(out_dir, public_key=public_key, lab=lab, names=(APPENDIX,))
        except Exception as exc:  # noqa: BLE001 - any signing trouble is a failed check, never a pass
            result.problems.append(f"{APPENDIX}.sig: {redactor.redact(str(exc))}")
    result.notes.append(f"promotions: {len(appendix['files'])} record(s) checked against {APPENDIX}")


def sign_appendix(out_dir: Path, lab: Any) -> list[Path]:
    """Sign the appendix with the lab's transit key when the lab signs verdicts ([] otherwise)."""
    from patchgate.evidence.signing import VerdictSigner

    signer = VerdictSigner.from_lab(lab)
    if signer is None:
        return []
    try:
        return signer.sign_run([out_dir / APPENDIX], out_dir)
    finally:
        signer.close()
