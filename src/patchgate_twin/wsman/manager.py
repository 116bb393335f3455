"""One listener per twin VM, started on demand and stopped together at the end of a run."""

from __future__ import annotations

import ssl
import threading
from typing import Any, Callable

from patchgate.secrets.base import credential_pair
from patchgate_twin.shell import ScriptHost
from patchgate_twin.wsman.endpoint import DEFAULT_IDLE_TIMEOUT, WSManEndpoint


class TwinEndpoints:
    """``start(vm) -> port``; each VM is its own host with its own port, counters and faults.

    ``credentials_for_vm(vm)`` is asked on every authentication, so rotating a VM's password in the twin
    takes effect at once (as a real account change would).
    """

    def __init__(self, script_host: ScriptHost, credentials_for_vm: Callable[[str], Any], *,
                 latency: float = 0.0, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._script_host = script_host
        self._credentials_for_vm = credentials_for_vm
        self._latency = latency
        self._idle_timeout = idle_timeout
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._endpoints: dict[str, WSManEndpoint] = {}

    def start(self, vm: str) -> int:
        with self._lock:
            endpoint = self._endpoints.get(vm)
            if endpoint is None:
                endpoint = WSManEndpoint(vm, self._script_host, lambda: credential_pair(self._credentials_for_vm(vm)),
                                         latency=self._latency, idle_timeout=self._idle_timeout,
                                         ssl_context=self._ssl_context)
                self._endpoints[vm] = endpoint
            return endpoint.start()

    def endpoint(self, vm: str) -> WSManEndpoint:
        with self._lock:
            try:
                return self._endpoints[vm]
            except KeyError:
                raise KeyError(f"no WSMan endpoint was started for VM '{vm}'") from None

    def port(self, vm: str) -> int:
        return self.endpoint(vm).port

    def counters(self, vm: str) -> dict[str, int]:
        return self.endpoint(vm).counters()

    def reset_counters(self, vm: str) -> None:
        self.endpoint(vm).reset_counters()

    def drop_shells(self, vm: str) -> int:
        """What a guest restart does to WinRM: every open shell is gone (clients must reconnect)."""
        with self._lock:
            endpoint = self._endpoints.get(vm)
        return endpoint.drop_shells() if endpoint is not None else 0

    def stop(self, vm: str) -> None:
        with self._lock:
            endpoint = self._endpoints.pop(vm, None)
        if endpoint is not None:
            endpoint.stop()

    def stop_all(self) -> None:
        """Stop every VM's listener at once (each shutdown waits for its serve loop's next poll)."""
        import concurrent.futures as cf

        with self._lock:
            endpoints, self._endpoints = list(self._endpoints.values()), {}
        if not endpoints:
            return
        with cf.ThreadPoolExecutor(max_workers=min(32, len(endpoints)), thread_name_prefix="twin-stop") as pool:
            list(pool.map(lambda endpoint: endpoint.stop(), endpoints))

    def __enter__(self) -> "TwinEndpoints":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
