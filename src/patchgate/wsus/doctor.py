"""What `patchgate doctor` says about a lab that installs through WSUS (docs/wsus.md): its unverified assumptions."""

from __future__ import annotations

from typing import Any

from patchgate.config.lab import Lab, VmSpec
from patchgate.doctor.checks import Check


def wsus_install_checks(lab: Lab, vm: VmSpec, posture: Any) -> list[Check]:
    if lab.install.via != "wsus" or lab.wsus is None:
        return []
    if vm.name == lab.wsus.server_name:
        return [Check("assumption", "install through WSUS", "ok",
                      f"this VM approves the candidate for group {lab.wsus.group} and installs it as a package")]
    checks = [Check("assumption", "install through WSUS", "ok",
                    f"offered by {lab.wsus.server_name} in group {lab.wsus.group} (client-side targeting: the "
                    "TargetGroup value names are [U]; a VM that does not join the group is not offered the "
                    "candidate and its run is inconclusive)")]
    hotpatch = posture.area("hotpatch") if posture is not None else None
    if hotpatch is not None and hotpatch.enrolled:
        checks.append(Check("assumption", "hotpatch through WSUS", "warn",
                            "hotpatch-enrolled: Microsoft does not document hotpatch delivery through WSUS [U]",
                            "wsus.offered is inconclusive when WSUS offers this VM a hotpatch; judge hotpatch "
                            "months with `install: {via: package}` (docs/wsus.md)"))
    return checks
