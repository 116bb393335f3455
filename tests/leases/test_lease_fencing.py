"""A lease is renewed from the moment it is taken, each VM on its own, and a holder that cannot prove its lease
stops: the fencing rule of docs/vault.md, against a real OpenBao with a short TTL."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import hvac.exceptions
import pytest
from support.contenders import build_manager
from support.openbao import OpenBao
from support.waiting import wait_until

from patchgate.errors import LeaseError, LeaseLost
from patchgate.leases.base import Lease, lease_waits

TTL = 1.5


def _spec(openbao: OpenBao, lab: str, ttl: float = TTL, token: str | None = None) -> dict[str, Any]:
    return {"kind": "vault", "lab": lab, "address": openbao.address, "token": token or openbao.root_token,
            "leases_path": "patchgate/leases", "ttl": ttl}


def _record(openbao: OpenBao, lab: str, vm: str) -> tuple[int, dict[str, Any]]:
    """(version, record) of a VM's lease; (0, {}) before its first lease."""
    try:
        reply = openbao.client().secrets.kv.v2.read_secret_version(f"patchgate/leases/{lab}/{vm}",
                                                                     raise_on_deleted_version=True)
    except hvac.exceptions.InvalidPath:
        return 0, {}
    return int(reply["data"]["metadata"]["version"]), reply["data"]["data"]


def test_a_lease_taken_first_is_renewed_while_the_run_waits_for_the_next(openbao: OpenBao) -> None:
    """Run B takes vm0, then waits for vm1 (held by A) for several TTLs: vm0 must never expire meanwhile, so a
    third run that keeps asking for vm0 never gets it."""
    lab = "lab-" + uuid.uuid4().hex[:8]
    holder_a, waiter_b, prober_c = (build_manager(_spec(openbao, lab)) for _ in range(3))
    try:
        a = holder_a.acquire(["vm1"], "run-a", timeout=5)  # renewing
        result: dict[str, Any] = {}

        def run_b() -> None:
            try:
                result["lease"] = waiter_b.acquire(["vm0", "vm1"], "run-b", timeout=60)
            except BaseException as exc:  # noqa: BLE001 - reported below
                result["error"] = exc

        thread = threading.Thread(target=run_b)
        thread.start()
        wait_until(lambda: _record(openbao, lab, "vm0")[1].get("run_id") == "run-b", "run-b never took vm0",
                   timeout=30)
        stolen: list[Lease] = []
        waited_until = time.monotonic() + 3 * TTL  # three TTLs: without renewal vm0 would have expired twice
        while time.monotonic() < waited_until:
            try:
                stolen.append(prober_c.acquire(["vm0"], "run-c", timeout=0, auto_renew=False))
                break
            except LeaseError:
                time.sleep(0.1)
        assert stolen == [], "vm0 expired while run-b was still waiting for vm1"
        a.release()
        thread.join(timeout=30)
        assert "error" not in result, result.get("error")
        lease: Lease = result["lease"]
        assert lease.vms == ["vm0", "vm1"] and lease.lost == {}
        lease.confirm("vm0")
        lease.release()
    finally:
        for manager in (holder_a, waiter_b, prober_c):
            manager.close()


def test_losing_one_lease_stops_neither_the_renewal_of_the_others_nor_hides_the_loss(openbao: OpenBao) -> None:
    lab = "lab-" + uuid.uuid4().hex[:8]
    manager = build_manager(_spec(openbao, lab))
    try:
        lease = manager.acquire(["vm0", "vm1"], "run-b", timeout=5)
        version, record = _record(openbao, lab, "vm0")
        # another run takes vm0 over (as after an expiry): a new version that is not run-b's
        openbao.client().secrets.kv.v2.create_or_update_secret(
            f"patchgate/leases/{lab}/vm0", {**record, "run_id": "run-thief", "expires": time.time() + 600},
            cas=version)
        wait_until(lambda: "vm0" in lease.lost, "the renewer never noticed the takeover", timeout=30)
        assert "run-thief" in lease.lost["vm0"]
        with pytest.raises(LeaseLost, match="lease lost.*run-thief"):
            lease.confirm("vm0")
        start = _record(openbao, lab, "vm1")[0]
        wait_until(lambda: _record(openbao, lab, "vm1")[0] >= start + 2, "vm1 is no longer renewed", timeout=30)
        lease.confirm("vm1")
        lease.release()
        assert _record(openbao, lab, "vm0")[1]["run_id"] == "run-thief"  # release left the new holder alone
        assert _record(openbao, lab, "vm1")[1]["state"] == "released"
    finally:
        manager.close()


def test_a_holder_that_cannot_reach_vault_for_its_ttl_counts_the_lease_as_lost(openbao: OpenBao) -> None:
    """The holder's token is revoked after the take: renewals fail (not a check-and-set mismatch, the backend is
    unusable). Within the TTL a step may not start (confirm refuses) but the lease is not lost yet; once the TTL
    has passed on the holder's own clock it is lost, because a contender may take it over from then on."""
    lab = "lab-" + uuid.uuid4().hex[:8]
    root = openbao.client()
    token = root.auth.token.create(policies=["root"], ttl="1h")["auth"]["client_token"]
    manager = build_manager(_spec(openbao, lab, ttl=3.0, token=token))
    try:
        lease = manager.acquire(["vm0"], "run-cut-off", timeout=5, auto_renew=False)
        root.auth.token.revoke(token)
        with pytest.raises(LeaseError, match="cannot confirm the lease") as within:
            lease.confirm("vm0")
        assert not isinstance(within.value, LeaseLost) and lease.lost == {}
        wait_until(lambda: _confirm_raises_lost(lease), "confirm never reported the lost lease", timeout=10)
        assert "within its TTL" in lease.lost["vm0"]
    finally:
        lease.release()
        manager.close()


def _confirm_raises_lost(lease: Lease) -> bool:
    try:
        lease.confirm("vm0")
    except LeaseLost:
        return True
    except LeaseError:
        return False
    return False


def test_a_release_during_the_take_gives_back_what_was_taken(openbao: OpenBao) -> None:
    """Ctrl-C while a run still waits: release() runs on another thread; nothing the take got stays held."""
    lab = "lab-" + uuid.uuid4().hex[:8]
    blocker, taker = build_manager(_spec(openbao, lab)), build_manager(_spec(openbao, lab))
    try:
        held = blocker.acquire(["vm1"], "run-blocker", timeout=5)
        lease = taker.new_lease("run-interrupted")
        stop = threading.Event()
        failure: list[BaseException] = []

        def take() -> None:
            try:
                lease.take(["vm0", "vm1"], timeout=60, stop=stop)
            except LeaseError as exc:
                failure.append(exc)

        thread = threading.Thread(target=take)
        thread.start()
        wait_until(lambda: lease.holds("vm0"), "the lease never held vm0", timeout=30)
        stop.set()
        lease.release()
        thread.join(timeout=30)
        assert failure and "stopped while waiting" in str(failure[0])
        assert _record(openbao, lab, "vm0")[1]["state"] == "released"
        held.release()
    finally:
        blocker.close()
        taker.close()


def test_waiting_is_reported_with_the_holder(openbao: OpenBao) -> None:
    lab = "lab-" + uuid.uuid4().hex[:8]
    blocker, taker = build_manager(_spec(openbao, lab)), build_manager(_spec(openbao, lab))
    heard: list[tuple[str, str, float]] = []
    token = lease_waits.set(lambda vm, who, waited, timeout: heard.append((vm, who, waited)))
    try:
        with blocker.acquire(["vm0"], "run-holding", timeout=5):
            lease = taker.new_lease("run-waiting")
            with pytest.raises(LeaseError, match="leased by run run-holding"):
                lease.take(["vm0"], timeout=0.5)
            lease.release()
        assert heard and heard[0][0] == "vm0" and "run-holding" in heard[0][1]
    finally:
        lease_waits.reset(token)
        blocker.close()
        taker.close()


def test_local_leases_confirm_while_held_and_refuse_after_release(tmp_path) -> None:  # type: ignore[no-untyped-def]
    manager = build_manager({"kind": "local", "lab": "fence", "state_dir": str(tmp_path)})
    lease = manager.acquire(["vm0"], "run-local", timeout=5, auto_renew=False)
    lease.confirm("vm0")
    with pytest.raises(LeaseLost, match="never held"):
        lease.confirm("vm9")
    lease.release()
    with pytest.raises(LeaseLost):
        lease.confirm("vm0")
