"""Real-world noise on a twin host: what a Windows Server 2025 VM changes on its own, with no update to blame.

A gate whose checks were only ever run against a perfectly quiet host blocks good updates on real servers. With
``hypervisor.settings.noise: realistic`` every twin host carries the noise below, drawn from a seeded random
generator per VM (``patchgate validate --seed N``), so a run is reproducible. Each source, and where it is
documented, is listed in docs/twin.md ("Noise"). With ``noise: quiet`` nothing here runs.

Hooks (the twin lab and shell call them): ``after_boot`` (power on after a revert, and every restart),
``after_install`` (servicing), ``settle`` (before anything reads the host: delayed starts that are due happen).
Every hook takes the true time; what the host stamps is on its own clock (``WindowsHost.guest_time``).
"""

from __future__ import annotations

import datetime as dt
import random
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from patchgate_twin.model import TIME_SCALE, EventRecord, ListeningPort, Process, Service, WindowsHost

if TYPE_CHECKING:
    from patchgate.config.lab import Lab

# Per-user service templates (Desktop Experience): an instance "<template>_<hex>" is created at every logon
# https://learn.microsoft.com/windows/application-management/per-user-services-in-windows
PER_USER_TEMPLATES = {"CDPUserSvc": "Connected Devices Platform User Service", "OneSyncSvc": "Sync Host",
                      "WpnUserService": "Windows Push Notifications User Service"}
# The dynamic (ephemeral) port range since Windows Server 2008: 49152-65535 (KB 929851,
# https://support.microsoft.com/kb/929851)
DYNAMIC_LOW, DYNAMIC_HIGH = 49152, 65535
RPC_FIRST = 49664  # where WS2025's boot-assigned RPC listeners start [U]
DELAYED_START_SECONDS = 120.0  # "a short delay of approximately two minutes" (MS-SCMR 2.2.33)
PENDING_DELETES = r"\??\C:\Windows\WinSxS\Temp\PendingDeletes"  # CBS clean-up queue (experience, [U])
SCM_TIMEOUTS = (7000, 7009, 7011)


@dataclass
class NoiseSettings:
    """What ``hypervisor.settings`` asks for; ``time_scale`` shrinks Windows' minutes to twin seconds."""

    realistic: bool = False
    seed: int = 0
    time_scale: float = TIME_SCALE
    scm_timeout_chance: float = 0.3
    trigger_stop_chance: float = 0.5
    max_skew_seconds: float = 90.0
    max_clock_step_seconds: float = 300.0


@dataclass
class HostNoise:
    """One VM's noise generator and what is still due on it (delayed starts)."""

    settings: NoiseSettings
    vm: str
    rng: random.Random = field(init=False)
    delayed_due: dict[str, dt.datetime] = field(default_factory=dict)  # service -> when SCM starts it
    serviced: bool = False  # an install ran since the last boot: the next boot is "the first after servicing"
    stepped: bool = False  # the clock was stepped since the revert
    booted: bool = False  # booted since the revert: the clock's skew is drawn at the first boot and kept

    def __post_init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        """A revert: the same seed draws the same noise again (reproducible runs, reverts included)."""
        self.rng = random.Random(zlib.crc32(f"{self.settings.seed}:{self.vm}".encode()))
        self.delayed_due.clear()
        self.serviced = self.stepped = self.booted = False

    # ------------------------------------------------------------ hooks

    def after_boot(self, host: WindowsHost, now: dt.datetime, *, after_servicing: bool = False) -> None:
        rng = self.rng
        host.boot_id += 1
        if not self.booted:  # a restart keeps the guest's clock; a revert brings back the snapshot's
            host.clock_offset_seconds = rng.uniform(-self.settings.max_skew_seconds, self.settings.max_skew_seconds)
            self.booted = True
        self._per_user_instances(host)
        self._rpc_listeners(host)
        self._ephemeral_udp(host)
        self.delayed_due.clear()
        scale = self.settings.time_scale
        for svc in host.services.values():
            if svc.start_mode == "Auto" and svc.delayed_auto_start and not svc.trigger_start:
                svc.state = "Stopped"  # its svchost stays up for the services it shares it with
                self.delayed_due[svc.name] = now + dt.timedelta(
                    seconds=DELAYED_START_SECONDS * scale * rng.uniform(1.0, 1.5))
        if after_servicing and rng.random() < self.settings.scm_timeout_chance:
            self._scm_timeout(host, now)
        self.serviced = False

    def after_install(self, host: WindowsHost, now: dt.datetime) -> None:
        rng = self.rng
        # LastBootUpTime is computed from the current time and the uptime: it drifts on VMs, and jumps when the
        # clock is stepped after a revert (windows_exporter #74, #2336; psutil #1007)
        drift = rng.uniform(-0.9, 0.9)
        if not self.stepped:  # the time service steps the guest's clock: everything stamped later moves with it
            step = rng.uniform(-self.settings.max_clock_step_seconds, self.settings.max_clock_step_seconds)
            host.clock_offset_seconds += step
            drift += step
            self.stepped = True
        host.last_boot_up_time += dt.timedelta(seconds=drift)
        tag = f"{rng.getrandbits(64):016x}"
        host.reboot.pending_file_rename_operations += [
            f"{PENDING_DELETES}\\{tag}.{n}" for n in range(rng.randint(1, 3))]
        for svc in host.services.values():
            if svc.trigger_start and svc.state == "Running" and rng.random() < self.settings.trigger_stop_chance:
                _stop(host, svc)
                svc.state = "Stopped"
                host.log_event(EventRecord("System", "Service Control Manager", 7036, "Information",
                                           host.guest_time(now),
                                           f"The {svc.display_name} service entered the stopped state.",
                                           [svc.display_name, "stopped"]))
        self._ephemeral_udp(host)
        self.serviced = True

    def settle(self, host: WindowsHost, now: dt.datetime) -> None:
        """Delayed auto-start services whose time has come are started (and logged) when it comes."""
        for name, due in sorted(self.delayed_due.items(), key=lambda item: item[1]):
            if due > now:
                continue
            del self.delayed_due[name]
            svc = host.services.get(name)
            if svc is not None and svc.start_mode == "Auto" and svc.state != "Running":
                svc.state = "Running"
                _start(host, svc)
                host.log_event(EventRecord("System", "Service Control Manager", 7036, "Information",
                                           host.guest_time(due),
                                           f"The {svc.display_name} service entered the running state.",
                                           [svc.display_name, "running"]))

    # ------------------------------------------------------------ sources

    def _per_user_instances(self, host: WindowsHost) -> None:
        if host.installation_type != "Server":
            return  # per-user services exist only with the Desktop Experience
        for template, display in PER_USER_TEMPLATES.items():
            for name in [n for n in host.services if n.startswith(template + "_")]:
                _stop(host, host.services.pop(name))
            if template not in host.services:
                host.services[template] = Service(template, display, state="Stopped", start_mode="Auto",
                                                  path_name=r"C:\Windows\system32\svchost.exe -k UnistackSvcGroup")
            suffix = f"{self.rng.getrandbits(20):05x}"
            instance = Service(f"{template}_{suffix}", f"{display}_{suffix}", state="Running", start_mode="Auto",
                               path_name=r"C:\Windows\system32\svchost.exe -k UnistackSvcGroup")
            host.services[instance.name] = instance
            _start(host, instance)

    def _rpc_listeners(self, host: WindowsHost) -> None:
        """The 49664+ RPC listeners are handed out in boot order, which varies."""
        rpc = [lp for lp in host.listening_ports if lp.protocol == "TCP" and lp.local_port >= RPC_FIRST]
        ports = sorted(lp.local_port for lp in rpc)
        self.rng.shuffle(ports)
        for lp, port in zip(rpc, ports):
            lp.local_port = port

    def _ephemeral_udp(self, host: WindowsHost) -> None:
        """Client sockets (DNS client, W32Time, ...) come and go in the dynamic range."""
        host.listening_ports = [lp for lp in host.listening_ports
                                if not (lp.protocol == "UDP" and lp.local_port >= DYNAMIC_LOW)]
        owners = [p for p in host.processes if p.name.lower() == "svchost.exe"]
        for _ in range(self.rng.randint(1, 4) if owners else 0):
            owner = self.rng.choice(owners)
            host.listening_ports.append(ListeningPort("UDP", "0.0.0.0", self.rng.randint(DYNAMIC_LOW, DYNAMIC_HIGH),
                                                      owner.process_id, owner.name))

    def _scm_timeout(self, host: WindowsHost, now: dt.datetime) -> None:
        """A slow first boot after servicing: SCM gives up waiting for one auto-start service, which then starts
        anyway (or is restarted by its recovery action)."""
        candidates = sorted(s.name for s in host.services.values()
                            if s.start_mode == "Auto" and s.state == "Running" and "_" not in s.name)
        if not candidates:
            return
        svc = host.services[self.rng.choice(candidates)]
        event_id = self.rng.choice(SCM_TIMEOUTS)
        text = {7000: f"The {svc.display_name} service failed to start due to the following error: \nThe service "
                      "did not respond to the start or control request in a timely fashion.",
                7009: f"A timeout was reached (30000 milliseconds) while waiting for the {svc.display_name} service "
                      "to connect.",
                7011: f"A timeout (30000 milliseconds) was reached while waiting for a transaction response from "
                      f"the {svc.name} service."}[event_id]
        host.log_event(EventRecord("System", "Service Control Manager", event_id, "Error", host.guest_time(now),
                                   text, [svc.display_name if event_id != 7011 else svc.name]),
                       delay=self.rng.uniform(1, 20))


def _start(host: WindowsHost, svc: Service) -> None:
    pids = {p.process_id for p in host.processes}
    if svc.process_id and svc.process_id in pids:
        return
    parent = next((p.process_id for p in host.processes if p.name.lower() == "services.exe"), 0)
    svc.process_id = max(pids | {4000}) + 4
    host.processes.append(Process(svc.process_id, "svchost.exe", parent, svc.path_name))


def _stop(host: WindowsHost, svc: Service) -> None:
    pid, svc.process_id = svc.process_id, 0
    if pid and not any(s.process_id == pid for s in host.services.values() if s is not svc):
        host.processes = [p for p in host.processes if p.process_id != pid]
        host.listening_ports = [lp for lp in host.listening_ports if lp.owning_process != pid]




def seeded(lab: "Lab", *, explicit: int | None = None, fresh: int | None = None) -> "Lab":
    """The lab with its twin noise seed decided: ``explicit`` (``--seed``) wins, then a seed the lab file states,
    then ``fresh`` (a new one per run); a lab that is not a noisy twin is returned as it is."""
    import secrets

    settings = lab.hypervisor.settings
    if lab.hypervisor.kind != "twin" or getattr(settings, "noise", "quiet") != "realistic":
        return lab
    seed = explicit if explicit is not None else settings.seed
    if seed is None:
        seed = fresh if fresh is not None else secrets.randbelow(2**31)
    if seed == settings.seed:
        return lab
    hypervisor = lab.hypervisor.model_copy(update={"settings": settings.model_copy(update={"seed": seed})})
    return lab.model_copy(update={"hypervisor": hypervisor})


def noise_facts(lab: "Lab") -> dict[str, object]:
    """What the run manifest and the summary say about the twin's noise (nothing for other labs)."""
    if lab.hypervisor.kind != "twin":
        return {}
    settings = lab.hypervisor.settings
    noise = getattr(settings, "noise", "quiet")
    return {"noise": noise, "seed": settings.seed if noise == "realistic" else None}


__all__ = ["DYNAMIC_LOW", "PENDING_DELETES", "PER_USER_TEMPLATES", "HostNoise", "NoiseSettings", "noise_facts",
           "seeded"]
