"""What production WSUS must show before a ring gets the KB: the very package the lab approved (by SHA-256), the
ring not approved yet, and the ring before it approved at least its soak time ago.

WSUS keeps a SHA-1 (UpdateFile.Hash) and a "SHA2" hash (UpdateFile.AdditionalHash, Microsoft Learn dn622973) per
file; the wsus-status op reports the latter as SHA-256 only when it is 32 bytes ([U]: the SDK does not name the
SHA-2 variant). A package whose SHA-256 WSUS cannot give is *unverifiable*: refused, unless the operator says
``--allow-unverified-sha256`` (recorded in the promotion record), never passed silently.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from patchgate.config.rings import Ring
from patchgate.promote.refusal import PromotionRefused
from patchgate.wsus.production import KbOnServer


def check_packages(kb: KbOnServer, packages: list[dict[str, Any]], *, allow_unverified: bool) -> dict[str, Any]:
    """Every package the run installed is a file WSUS holds of the KB; the check's outcome for the record."""
    if kb.updates == 0:
        raise PromotionRefused(f"WSUS {kb.server} holds no update {kb.kb} (not synchronized yet, or declined)")
    known = {str(f["Sha256"]).lower(): f for f in kb.files if f.get("Sha256")}
    matched, unverifiable = [], []
    for package in packages:
        wsus_file = known.get(package["sha256"])
        if wsus_file is not None:
            matched.append({"package": package["file"], "sha256": package["sha256"], "wsus_file": wsus_file["Name"]})
        elif known:
            raise PromotionRefused(f"package {package['file']} (sha256 {package['sha256']}) is not a file WSUS "
                                   f"{kb.server} holds of {kb.kb} (its files: "
                                   f"{', '.join(sorted(f['Name'] for f in known.values()))}): a different package")
        else:
            unverifiable.append(package["file"])
    if unverifiable and not allow_unverified:
        raise PromotionRefused(f"WSUS {kb.server} gives no SHA-256 for the files of {kb.kb}, so package(s) "
                               f"{', '.join(unverifiable)} cannot be matched; --allow-unverified-sha256 promotes "
                               "anyway (recorded)")
    return {"result": "unverified (--allow-unverified-sha256)" if unverifiable else "matched",
            "matched": matched, "unverified": unverifiable}


def check_groups_exist(kb: KbOnServer, ring: Ring) -> None:
    """Production groups are its administrators' business: a ring naming a group WSUS lacks is refused, before
    any group is approved."""
    missing = [g for g in ring.groups if g not in kb.groups]
    if missing:
        raise PromotionRefused(f"WSUS {kb.server} has no computer target group {', '.join(missing)} of ring "
                               f"{ring.name} (promote never creates one; its groups: {', '.join(sorted(kb.groups))})")


def check_not_promoted(kb: KbOnServer, ring: Ring) -> None:
    done = kb.approved(ring.groups)
    if {a.group for a in done} >= set(ring.groups):
        raise PromotionRefused(f"{kb.kb} is already approved for ring {ring.name} (groups {', '.join(ring.groups)}) "
                               f"on {kb.server} since {done[0].created.isoformat()}")


@dataclass(frozen=True)
class PreviousRing:
    ring: str
    promoted_at: dt.datetime
    soak: dt.timedelta

    def to_dict(self) -> dict[str, Any]:
        return {"ring": self.ring, "promoted_at": self.promoted_at.isoformat(),
                "soak_s": int(self.soak.total_seconds())}


def promoted_at(kb: KbOnServer, ring: Ring) -> dt.datetime | None:
    """When every group of the ring had the KB (the latest of the groups' approvals), or None."""
    first: dict[str, dt.datetime] = {}
    for approval in kb.approved(ring.groups):
        first.setdefault(approval.group, approval.created)
    if set(first) < set(ring.groups) or not first:
        return None
    return max(first.values())


def check_soaked(kb: KbOnServer, previous: Ring, ring: Ring, now: dt.datetime) -> PreviousRing:
    when = promoted_at(kb, previous)
    if when is None:
        raise PromotionRefused(f"ring {ring.name} comes after ring {previous.name}, and {kb.kb} is not approved for "
                               f"every group of {previous.name} ({', '.join(previous.groups)}) on {kb.server}; "
                               f"promote {previous.name} first")
    if now - when < ring.soak_time:
        raise PromotionRefused(f"ring {previous.name} got {kb.kb} at {when.isoformat()}; ring {ring.name} must wait "
                               f"its soak time until {(when + ring.soak_time).isoformat()}")
    return PreviousRing(ring=previous.name, promoted_at=when, soak=ring.soak_time)
