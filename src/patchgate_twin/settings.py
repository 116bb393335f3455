"""What a twin lab file sets (docs/lab-file.md): ``hypervisor.settings`` and ``secrets.settings`` of ``kind: twin``.
The twin's lab kind declares these models (patchgate_twin.kind); the engine validates a lab file's sections with
them through the registry of lab kinds and never names them."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator

from patchgate.config.strict import Strict


class TwinLatency(Strict):
    """Seconds the twin waits per operation so rehearsals look like a real lab."""

    revert: float = Field(0.0, ge=0, le=600)
    boot: float = Field(0.0, ge=0, le=600)
    install: float = Field(0.0, ge=0, le=3600)
    reboot: float = Field(0.0, ge=0, le=600)
    wsman_round_trip: float = Field(0.0, ge=0, le=10)


class TwinShare(Strict):
    """A share the twin serves its VMs (``staging.source: share``): the UNC root ``unc`` is a folder on this
    machine, and reading it takes the account an administrator gave it: ``username`` with the password held in
    the environment variable ``password_env`` of the twin's process (none: any account reads it)."""

    unc: str = Field(..., pattern=r"^\\\\[^\\]+\\[^\\]+$", description=r"\\server\share")
    folder: str = Field(..., min_length=1, description="the folder on this machine that holds the share's files")
    username: str | None = Field(None, min_length=1, description="the one account that reads the share")
    password_env: str | None = Field(None, min_length=1, description="the variable holding that account's "
                                     "password (read by the twin when a VM connects, never written anywhere)")


class TwinHypervisorSettings(Strict):
    latency: TwinLatency = TwinLatency()
    shares: list[TwinShare] = Field(default_factory=list, description="shares the twin serves (docs/twin.md)")
    trusted_ca: str | None = Field(None, min_length=1, description="a PEM file of the CA certificates the twin's "
                                   "VMs trust besides this machine's roots (a lab's enterprise CA): what an "
                                   "https share's certificate is checked against (docs/twin.md)")
    noise: Literal["realistic", "quiet"] = Field(
        "quiet", description="realistic: the hosts change on their own as real VMs do (docs/twin.md, Noise)")
    seed: int | None = Field(None, ge=0, description="the noise's seed; `patchgate validate --seed N` sets it "
                             "(default: a fresh one per run, recorded in run-manifest.json)")
    clock_skew: float | None = Field(None, ge=-3600, le=3600, description="seconds every guest's clock is ahead "
                                     "of the controller's (negative: behind); default: none when quiet, a seeded "
                                     "skew of up to 90 s per VM when realistic")
    own_process: bool = Field(True, description="serve the twin's hosts and their WinRM listeners from a process "
                              "of their own, as a real lab's machines are (psrp remoting); false keeps them inside "
                              "the harness's process, where a debugger or profiler sees both sides")
    at_rest: Literal["running", "off"] = Field(
        "running", description="how the twin's VMs rest between runs: running at their snapshot (doctor reads them "
        "as they are) or powered off (doctor warns per guest check unless --boot); docs/twin.md, At rest")

    @field_validator("trusted_ca")
    @classmethod
    def _home_expanded(cls, value: str | None) -> str | None:
        """``~`` means the same to the input check and to the twin's downloads."""
        return os.path.expanduser(value) if value else value


class TwinSecretsSettings(Strict):
    """The twin lab's own credentials, generated per run; nothing to configure."""
