"""The WSUS round the lifecycles share: clients wait for the server's approval, give up when it cannot come, and
the server waits for its clients; every wait ends when the run stops."""

from __future__ import annotations

import threading

import pytest

from patchgate.config.install import WsusSettings
from patchgate.errors import LabError, LabTimeout
from patchgate.wsus.ops import Approval
from patchgate.wsus.round import WsusRound

SETTINGS = WsusSettings(server="wsus", group="lab")
APPROVAL = Approval(server="wsus", kb="KB5070881", group="lab", group_created=True, previous_targeting_mode="Server",
                    url="http://wsus.contoso.local:8530")


def _round(clients=("a", "b"), *, server_in_run: bool = True) -> WsusRound:
    return WsusRound(SETTINGS, list(clients), server_in_run=server_in_run, stop=threading.Event())


def test_a_client_gets_the_approval_the_server_gives_from_another_thread():
    round_ = _round()
    threading.Thread(target=round_.approved, args=(APPROVAL,)).start()
    assert round_.wait_approval("a", timeout=30) == APPROVAL
    assert round_.url == "http://wsus.contoso.local:8530"


def test_the_labs_url_overrides_the_servers():
    round_ = WsusRound(SETTINGS.model_copy(update={"url": "https://wsus.lab:8531"}), ["a"], server_in_run=True,
                       stop=threading.Event())
    round_.approved(APPROVAL)
    assert round_.url == "https://wsus.lab:8531"


def test_a_server_that_broke_before_approving_fails_every_client_at_once():
    round_ = _round()
    round_.finished("wsus", LabError("preflight failed", vm="wsus"))
    with pytest.raises(LabError, match="could not approve the candidate: its VM broke before approving"):
        round_.wait_approval("a", timeout=600)


def test_a_server_outside_the_run_is_named():
    with pytest.raises(LabError, match="WSUS server wsus is not part of this run"):
        _round(server_in_run=False).wait_approval("a", timeout=600)


def test_a_stopped_run_ends_the_wait_for_the_approval():
    round_ = _round()
    round_.stop.set()
    with pytest.raises(LabError, match="stopped before WSUS approved"):
        round_.wait_approval("a", timeout=600)


def test_no_approval_within_the_timeout_is_a_lab_timeout():
    with pytest.raises(LabTimeout, match="did not approve the candidate within 0.01s"):
        _round().wait_approval("a", timeout=0.01)


def test_the_server_waits_for_every_client_and_names_those_still_installing():
    round_ = _round(("a", "b"))
    round_.finished("a")
    assert round_.wait_clients(timeout=0.01) == ["b"]
    threading.Thread(target=round_.finished, args=("b",)).start()
    assert round_.wait_clients(timeout=30) == []


def test_a_run_narrowed_to_a_client_knows_its_server_is_not_in_it():
    from pathlib import Path

    from patchgate.config import load_candidate, load_lab, resolve_candidate
    from patchgate.run.labrun import LabRun, RunSelection

    lab = load_lab(Path(__file__).resolve().parents[2] / "labs" / "twin-wsus.example.yaml")
    run = LabRun(lab, load_candidate(resolve_candidate("KB5070881")), selection=RunSelection(vms=["ws25-hp-01"]))
    narrowed = run._wsus_round(["ws25-hp-01"])
    assert narrowed is not None and not narrowed.server_in_run
    whole = LabRun(lab, run.candidate)._wsus_round(["ws25-hp-01", "ws25-az-01", "ws25-wsus-01"])
    assert whole is not None and whole.server_in_run and whole.wait_clients(0) == ["ws25-az-01", "ws25-hp-01"]
