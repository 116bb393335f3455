"""Leases, local and Vault: exclusion under contention (threads and processes), all-or-nothing,
timeouts naming the holder, expired/dead-holder takeover, renewal, listing."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support.contenders import build_manager, check_log, contend
from support.labs import make_lab, vault_lab
from support.waiting import wait_until
from support.openbao import OpenBao

from patchgate.config.lab import VaultSecretsSettings
from patchgate.errors import LeaseError
from patchgate.leases import build_lease_manager, leases_command, render_leases
from patchgate.leases.base import LeaseManager
from patchgate.leases.local import LocalLeaseManager
from patchgate.leases.vault import VaultLeaseManager
from patchgate.secrets.vault_session import VaultSession

VMS = ["vm0", "vm1", "vm2", "vm3"]
CONTENDERS = 8
ROUNDS = 3


@pytest.fixture(params=["local", "vault"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    lab = "lab-" + uuid.uuid4().hex[:8]
    if request.param == "local":
        return {"kind": "local", "lab": lab, "state_dir": str(tmp_path / "state")}
    server: OpenBao = request.getfixturevalue("openbao")
    return {"kind": "vault", "lab": lab, "address": server.address, "token": server.root_token,
            "leases_path": "patchgate/leases", "ttl": 60}


@pytest.fixture
def manager(spec: dict[str, Any]) -> Iterator[LeaseManager]:
    built = build_manager(spec)
    yield built
    built.close()


def _wants(index: int) -> list[str]:
    """Overlapping subsets of 2-4 VMs, so contenders block each other in every combination."""
    size = 2 + index % 3
    return [VMS[(index + k) % len(VMS)] for k in range(size)]


def _assert_exclusive(shared: Path, manager: LeaseManager) -> None:
    sections, problems = check_log(shared)
    assert problems == []
    assert sections == sum(len(_wants(i)) for i in range(CONTENDERS)) * ROUNDS
    assert manager.list_leases() == []  # every VM released at the end
    assert not list(shared.glob("*.holder"))


def test_threads_never_share_a_vm(spec: dict[str, Any], manager: LeaseManager, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    with ThreadPoolExecutor(CONTENDERS) as pool:
        futures = [pool.submit(contend, spec, f"t{i}", _wants(i), ROUNDS, str(shared))
                   for i in range(CONTENDERS)]
        assert [f.result(timeout=300) for f in futures] == [ROUNDS] * CONTENDERS
    _assert_exclusive(shared, manager)


def test_processes_never_share_a_vm(spec: dict[str, Any], manager: LeaseManager, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(CONTENDERS) as pool:
        results = [pool.apply_async(contend, (spec, f"p{i}", _wants(i), ROUNDS, str(shared)))
                   for i in range(CONTENDERS)]
        assert [r.get(timeout=300) for r in results] == [ROUNDS] * CONTENDERS
    _assert_exclusive(shared, manager)


def test_all_or_nothing_and_timeout_names_vm_and_holder(spec: dict[str, Any], manager: LeaseManager) -> None:
    holder = manager.acquire(["vm2"], "holder-run", timeout=5, auto_renew=False)
    try:
        with pytest.raises(LeaseError) as info:
            manager.acquire(["vm3", "vm1", "vm2"], "late-run", timeout=0.3, auto_renew=False)
        message = str(info.value)
        assert info.value.vm == "vm2"
        assert "holder-run" in message and str(os.getpid()) in message
        held = {(i.vm, i.run_id) for i in manager.list_leases()}
        assert held == {("vm2", "holder-run")}  # vm1, taken first by late-run, was rolled back
    finally:
        holder.release()
    again = manager.acquire(["vm1", "vm2", "vm3"], "late-run", timeout=5, auto_renew=False)
    assert again.vms == ["vm1", "vm2", "vm3"]
    assert {i.run_id for i in manager.list_leases()} == {"late-run"}
    again.release()
    again.release()  # idempotent
    assert manager.list_leases() == []
    with pytest.raises(LeaseError, match="already released"):
        again.renew()


def test_listing_shows_holder_info(spec: dict[str, Any], manager: LeaseManager) -> None:
    with manager.acquire(["vm0", "vm1"], "listing-run", timeout=5, auto_renew=False) as lease:
        lease.renew()
        infos = manager.list_leases()
        assert [i.vm for i in infos] == ["vm0", "vm1"]
        for info in infos:
            assert (info.run_id, info.pid, info.state) == ("listing-run", os.getpid(), "held")
            assert info.host and info.expires is not None and info.expires > info.acquired
        table = render_leases(infos, lab=spec["lab"], kind=manager.kind)
        assert "listing-run" in table and "vm1" in table and spec["lab"] in table
    assert "No VM leases" in render_leases(manager.list_leases(), lab=spec["lab"], kind=manager.kind)


# ---------------------------------------------------------------- takeover


def test_local_lease_of_dead_process_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    code = ("import sys, pathlib; from patchgate.leases.local import LocalLeaseManager as M; "
            f"m = M('deadlab', state_dir=pathlib.Path({str(state)!r})); "
            "l = m.acquire(['vm0'], 'doomed-run', timeout=5, auto_renew=False); "
            "print('held', flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        manager = LocalLeaseManager("deadlab", state_dir=state)
        with pytest.raises(LeaseError, match="doomed-run"):
            manager.acquire(["vm0"], "next-run", timeout=0.2, auto_renew=False)
    finally:
        os.kill(child.pid, signal.SIGKILL)  # dies without releasing: only the kernel frees the lock
        child.wait(timeout=10)
    assert [i.state for i in manager.list_leases()] == ["stale"]
    with caplog.at_level(logging.WARNING, logger="patchgate.leases"):
        lease = manager.acquire(["vm0"], "next-run", timeout=5, auto_renew=False)
    assert "took over the lease of VM vm0" in caplog.text and "doomed-run" in caplog.text
    assert [(i.run_id, i.state) for i in manager.list_leases()] == [("next-run", "held")]
    lease.release()


def test_vault_expired_lease_is_taken_over_and_old_holder_loses_it(
        openbao: OpenBao, caplog: pytest.LogCaptureFixture) -> None:
    lab = "lab-" + uuid.uuid4().hex[:8]
    short = {"kind": "vault", "lab": lab, "address": openbao.address, "token": openbao.root_token,
             "leases_path": "patchgate/leases", "ttl": 1}
    first_manager = build_manager(short)
    second_manager = build_manager({**short, "ttl": 60})
    try:
        first = first_manager.acquire(["vm0"], "stalled-run", timeout=5, auto_renew=False)  # never renewed
        with caplog.at_level(logging.WARNING, logger="patchgate.leases"):
            second = second_manager.acquire(["vm0"], "fresh-run", timeout=30, auto_renew=False)
        assert "took over the expired lease of VM vm0" in caplog.text and "stalled-run" in caplog.text
        with pytest.raises(LeaseError, match="lease lost.*fresh-run"):
            first.renew()
        first.release()  # must not release what fresh-run now holds
        assert [(i.vm, i.run_id) for i in second_manager.list_leases()] == [("vm0", "fresh-run")]
        second.renew()
        second.release()
        assert second_manager.list_leases() == []
    finally:
        first_manager.close()
        second_manager.close()


def test_vault_renewer_thread_keeps_lease_alive(openbao: OpenBao) -> None:
    lab = "lab-" + uuid.uuid4().hex[:8]
    manager = build_manager({"kind": "vault", "lab": lab, "address": openbao.address,
                             "token": openbao.root_token, "leases_path": "patchgate/leases", "ttl": 1.5})
    assert isinstance(manager, VaultLeaseManager)
    try:
        lease = manager.acquire(["vm0"], "long-run", timeout=5)
        kv = openbao.client().secrets.kv.v2
        path = f"patchgate/leases/{lab}/vm0"

        def version() -> int:
            reply = kv.read_secret_version(path, raise_on_deleted_version=True)
            return int(reply["data"]["metadata"]["version"])

        start = version()
        wait_until(lambda: version() >= start + 2, "two renewals of the lease", timeout=30)
        assert [i.state for i in manager.list_leases()] == ["held"]
        lease.release()
        assert lease._renewer is not None and not lease._renewer.is_alive()
        assert manager.list_leases() == []
    finally:
        manager.close()


# ---------------------------------------------------------------- factory and CLI text


def test_build_lease_manager_picks_backend(openbao: OpenBao, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(tmp_path))
    local = build_lease_manager(make_lab({"kind": "twin"}))
    assert isinstance(local, LocalLeaseManager)
    assert local.directory == tmp_path / "leases" / "unit"

    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    lab = vault_lab(openbao.address, name="clilab-" + uuid.uuid4().hex[:6], leases_path="patchgate/leases")
    manager = build_lease_manager(lab)
    assert isinstance(manager, VaultLeaseManager)
    try:
        with manager.acquire(["vm1"], "cli-run", timeout=5, auto_renew=False):
            text = leases_command(lab)
            assert "cli-run" in text and "vm1" in text and "vault" in text
    finally:
        manager.close()
    assert "No VM leases" in leases_command(lab)
    # a Vault lab without leases_path falls back to local locks
    assert isinstance(build_lease_manager(vault_lab(openbao.address)), LocalLeaseManager)


def test_vault_leases_need_write_permission(openbao: OpenBao) -> None:
    from support.openbao import make_approle

    role = "ro-" + uuid.uuid4().hex[:6]
    role_id, secret_id = make_approle(openbao.client(), role,
                                      'path "secret/data/patchgate/leases/*" { capabilities = ["read"] }')
    login = openbao.client(token="x").auth.approle.login(role_id=role_id, secret_id=secret_id,
                                                         use_token=False)
    settings = VaultSecretsSettings(address=openbao.address, leases_path="patchgate/leases")
    manager = VaultLeaseManager("ro-lab", settings,
                                session=VaultSession(settings, token=login["auth"]["client_token"]))
    try:
        with pytest.raises(LeaseError, match="permission denied.*secret/patchgate/leases/ro-lab/vm0"):
            manager.acquire(["vm0"], "ro-run", timeout=1, auto_renew=False)
    finally:
        manager.close()


def test_vault_lease_deleted_by_hand_counts_as_free(openbao: OpenBao) -> None:
    lab = "lab-" + uuid.uuid4().hex[:8]
    manager = build_manager({"kind": "vault", "lab": lab, "address": openbao.address,
                             "token": openbao.root_token, "leases_path": "patchgate/leases", "ttl": 60})
    try:
        manager.acquire(["vm0"], "abandoned-run", timeout=5, auto_renew=False)
        openbao.client().secrets.kv.v2.delete_latest_version_of_secret(f"patchgate/leases/{lab}/vm0")
        assert manager.list_leases() == []
        with manager.acquire(["vm0"], "after-delete", timeout=5, auto_renew=False):
            assert [i.run_id for i in manager.list_leases()] == ["after-delete"]
    finally:
        manager.close()


def test_vault_lease_of_a_dead_holder_is_released_only_while_it_is_that_holders(openbao: OpenBao) -> None:
    lab = "lab-" + uuid.uuid4().hex[:8]
    manager = build_manager({"kind": "vault", "lab": lab, "address": openbao.address,
                             "token": openbao.root_token, "leases_path": "patchgate/leases", "ttl": 60})
    try:
        manager.acquire(["vm0", "vm1"], "dead-run", timeout=5, auto_renew=False)  # never released
        held = {info.vm: info.lease_id for info in manager.list_leases()}
        assert set(held) == {"vm0", "vm1"}
        manager.release_for_dead_holder("vm1", "not-" + held["vm1"], "reap pid 1")  # another holder's: kept
        manager.release_for_dead_holder("vm0", held["vm0"], "reap pid 1")
        assert [info.vm for info in manager.list_leases()] == ["vm1"]
        record = openbao.client().secrets.kv.v2.read_secret_version(
            f"patchgate/leases/{lab}/vm0", raise_on_deleted_version=True)["data"]["data"]
        assert record["state"] == "released" and record["released_by"] == "reap pid 1"
        with manager.acquire(["vm0"], "next-run", timeout=5, auto_renew=False):
            assert sorted(i.run_id for i in manager.list_leases()) == ["dead-run", "next-run"]
    finally:
        manager.close()


def test_patchgate_leases_command_lists_held_leases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from patchgate.cli import main
    from patchgate.config import load_lab, resolve_lab

    monkeypatch.setenv("PATCHGATE_STATE_DIR", str(tmp_path))
    lab = load_lab(resolve_lab("twin"))
    manager = build_lease_manager(lab)
    vm = lab.vms[0].name
    with manager.acquire([vm], "cli-listed-run", timeout=5, auto_renew=False):
        assert main(["leases", "--lab", "twin"]) == 0
        out = capsys.readouterr().out
        assert "cli-listed-run" in out and vm in out and "held" in out
    assert main(["leases", "--lab", "twin"]) == 0
    assert "No VM leases held in lab" in capsys.readouterr().out
