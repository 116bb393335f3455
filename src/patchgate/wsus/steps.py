"""The lifecycle steps of ``install: {via: wsus}``: on the server VM approve, wait for the clients, undo; on every
other VM wait for the approval, then point it at WSUS and install what it is offered (docs/wsus.md)."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from patchgate.errors import InstallError, LabError
from patchgate.model.observations import InstallRecord, Step
from patchgate.secrets.redact import redactor
from patchgate.wsus.ops import RESULT_CODES, approve, client_install, unapprove

if TYPE_CHECKING:
    from patchgate.run.lifecycle import VmLifecycle

SUCCEEDED = (2, 3)  # orcSucceeded, orcSucceededWithErrors


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def approve_for_lab(lc: VmLifecycle) -> None:
    """On the WSUS server VM, before its own install: approve, let the clients install, undo in every outcome."""
    ctx, round_ = lc.ctx, lc.ctx.wsus
    assert round_ is not None and lc.session is not None
    settings = round_.settings
    try:
        with lc.step("wsus_approve", mutates=True) as record:
            ctx.ledger.record("wsus_approve", vm=lc.vm.name, kb=ctx.candidate.kb, group=settings.group)
            approval = approve(lc.session, server=lc.vm.name, kb=ctx.candidate.kb, group=settings.group,
                               timeout=ctx.lab.timeouts.capture)
            lc.obs.wsus = {"approval": approval.to_dict()}
            round_.approved(approval)
            record.detail = (f"{approval.kb} approved for {approval.group} ({len(approval.updates)} update(s)); "
                             f"clients use {round_.url}")
    except BaseException as exc:
        round_.failed(redactor.redact(str(exc)))
        raise
    try:
        with lc.step("wsus_wait_clients") as record:
            budget = ctx.lab.timeouts.ready + ctx.lab.timeouts.install + settings.task_timeout
            left = round_.wait_clients(budget)
            record.detail = f"still installing: {', '.join(left)}" if left else "every client is done"
    finally:
        _undo(lc)


def _undo(lc: VmLifecycle) -> None:
    """Undo the lab's approval, also when the run is stopping (a step would refuse then, so this records its own)."""
    ctx, round_ = lc.ctx, lc.ctx.wsus
    assert round_ is not None and round_.approval is not None
    record = Step(name="wsus_unapprove", started_at=_now())
    lc.obs.steps.append(record)
    lc._emit(record.name, "start")
    began = time.monotonic()
    try:
        if lc.session is None:
            raise LabError("no session to the WSUS server", vm=lc.vm.name)
        round_.undone = unapprove(lc.session, round_.approval, timeout=ctx.lab.timeouts.capture)
        ctx.ledger.record("wsus_unapprove", vm=lc.vm.name, kb=round_.approval.kb, group=round_.approval.group)
        record.detail = f"{round_.undone.get('Removed')} approval(s) removed"
    except Exception as exc:  # noqa: BLE001 - the VM's restore reverts the server anyway; say so, go on
        record.ok = False
        record.detail = redactor.redact(f"the approval could not be undone ({exc}); the server VM's restore "
                                        "reverts it")
    record.duration = time.monotonic() - began
    lc._emit(record.name, "ok" if record.ok else "fail", record.detail)
    if lc.obs.wsus is not None:
        lc.obs.wsus["undo"] = round_.undone or {"error": record.detail}


def install_via_wsus(lc: VmLifecycle) -> None:
    """On a client VM: wait for the approval, then scan, download and install as a SYSTEM task."""
    ctx, obs, round_ = lc.ctx, lc.obs, lc.ctx.wsus
    assert round_ is not None
    try:
        with lc.step("wsus_wait_approval"):
            approval = round_.wait_approval(lc.vm.name, ctx.lab.timeouts.ready + ctx.lab.timeouts.install)
        with lc.step("install", limit="install", mutates=True) as record:
            assert lc.session is not None
            kb = ctx.candidate.kb
            ctx.ledger.record("install", vm=lc.vm.name, kb=kb, via="wsus", server=approval.server)
            started = _now()
            result = client_install(lc.session, vm=lc.vm.name, url=round_.url, group=approval.group,
                                    task_name=f"patchgate-wsus-{ctx.run_id}", task_timeout=round_.settings.task_timeout,
                                    timeout=round_.settings.task_timeout + ctx.lab.timeouts.capture)
            obs.wsus = {"server": approval.server, "group": approval.group, "url": round_.url, **result.to_dict()}
            judge_install(lc.vm.name, kb, result)
            obs.install = InstallRecord(kb=kb, exit_code=3010 if result.reboot_required else 0,
                                        restart_needed=result.reboot_required, output=[], started_at=started,
                                        finished_at=_now())
            record.detail = (f"offered {', '.join(o.get('Kb') or '?' for o in result.offered)}; installed "
                             f"{', '.join(result.installed)}; {RESULT_CODES.get(result.result_code)}, restart "
                             f"{'required' if result.reboot_required else 'not required'}")
    finally:
        round_.finished(lc.vm.name)


def judge_install(vm: str, kb: str, result) -> None:
    """Lab trouble, never a verdict: the task failed, or the candidate was not installed (a VM WSUS did not
    offer it to tells nothing about it; what it was offered is in the evidence)."""
    offered = [str(o.get("Kb") or "").upper() for o in result.offered]
    if result.error or result.result_code not in SUCCEEDED:
        raise InstallError(f"the WSUS install task on VM {vm} ended {RESULT_CODES.get(result.result_code, 'unknown')}"
                           f" (ResultCode {result.result_code}, HResult 0x{result.hresult & 0xFFFFFFFF:08X}): "
                           f"{result.error or 'see the per-update results'}", vm=vm, step="install")
    if kb not in offered:
        raise LabError(f"WSUS did not offer {kb} to VM {vm} (offered: {', '.join(offered) or 'nothing'}): what "
                       f"installing it does there cannot be judged", vm=vm, step="install")
    if kb not in result.installed:
        codes = "; ".join(f"{r.get('Kb')}: ResultCode {r.get('ResultCode')}, HResult "
                          f"0x{int(r.get('HResult') or 0) & 0xFFFFFFFF:08X}" for r in result.results)
        raise InstallError(f"WSUS offered {kb} to VM {vm} but it was not installed ({codes or 'no result'})",
                           vm=vm, step="install")
