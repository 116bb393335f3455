"""One WSUS synchronization with Microsoft Update, as the host's state allows."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from patchgate_twin.model import SyncInfo, WindowsHost


class WsusRoleMissing(RuntimeError):
    """run_wsus_sync on a host without the WSUS Server role (Get-WsusServer would fail)."""


def run_wsus_sync(host: WindowsHost, now: dt.datetime, *, manual: bool = True,
                  duration: dt.timedelta = dt.timedelta(0)) -> SyncInfo:
    """One synchronization with Microsoft Update, as the host's WSUS state allows; recorded in ``last_sync``.

    It fails when the WSUS service, IIS (W3SVC) or the database is not running, when the WsusPool app pool is not
    Started, or when a behaviour set ``wsus.sync_outcome`` to Failed/Canceled. Error strings for failures are the
    twin's own [U]; ErrorText is blank while ``error_details_hidden`` is set.
    """
    wsus = host.wsus
    if not wsus.role_installed:
        raise WsusRoleMissing(f"{host.computer_name} has no WSUS Server role")

    def running(name: str) -> bool:
        svc = host.services.get(name)
        return bool(svc and svc.state == "Running")

    result: Literal["Succeeded", "Failed", "Canceled"] = "Succeeded"
    error, text = "NotApplicable", ""
    if not running("WsusService"):
        result, error, text = "Failed", "UnknownError", "The WSUS service (WsusService) is not running."
    elif not running("W3SVC") or wsus.app_pool_state != "Started":
        result, error, text = "Failed", "UnknownError", \
            "The request failed with HTTP status 503: Service Unavailable (WsusPool is not started)."
    elif not running("MSSQL$MICROSOFT##WID") and "MSSQL$MICROSOFT##WID" in host.services:
        result, error, text = "Failed", "UnknownError", "Cannot open the SUSDB database (WID is not running)."
    elif wsus.sync_outcome != "Succeeded":
        result = wsus.sync_outcome
        error = wsus.sync_error if wsus.sync_error != "NotApplicable" else \
            ("UserCanceled" if result == "Canceled" else "UnknownError")
        text = wsus.sync_error_text
    if wsus.error_details_hidden and result == "Failed":
        text = ""
    info = SyncInfo(start_time=now, end_time=now + duration, result=result, error=error, error_text=text,
                    started_manually=manual, update_error_count=0 if result == "Succeeded" else 1,
                    id=str(uuid.uuid4()))
    wsus.last_sync = info
    wsus.sync_status = "NotProcessing"
    return info
