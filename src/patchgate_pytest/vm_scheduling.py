"""pytest-xdist scheduling for the suites: every check of one VM on one worker, every VM handed out at once.

Written against pytest-xdist's public scheduler protocol (``xdist.scheduler.protocol.Scheduling``, returned
by the ``pytest_xdist_make_scheduler`` hook), not by patching one of its schedulers. ``--dist loadgroup`` with
``xdist_group`` marks would group the checks, but pytest-xdist 3.8 names a group by rewriting the item's
private ``_nodeid``, which pytest 9 no longer reads, and it hands a worker two groups at a time.

The VMs are dealt out in the lab file's order, round robin over the workers pytest-xdist starts with the run
(``gw0`` .. ``gwN-1``): VM *i* goes to ``gw{i mod N}``. A worker computes the same partition from its
``workerinput`` (:func:`vm_partition`), so it starts the lifecycles of all its VMs at once without reading
pytest-xdist's queue. A worker that replaces one that died gets what its predecessor had not run and learns
those VMs as their checks arrive.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

VM_ID = re.compile(r"\[([^\[\]]+)\]$")  # the VM name is each invariant test's parameter id


def vm_of_nodeid(nodeid: str) -> str | None:
    match = VM_ID.search(nodeid)
    return match.group(1) if match else None


def vm_partition(vm_names: Sequence[str], workers: int) -> dict[str, int]:
    """The index of the worker each VM's checks go to (both the controller and the workers compute it)."""
    return {name: index % max(1, workers) for index, name in enumerate(vm_names)}


def original_worker_index(worker_id: str, workers: int) -> int | None:
    """``gw3`` -> 3 for one of the workers the run started with; None for a replacement (``gwN`` and up)."""
    digits = worker_id.removeprefix("gw")
    return int(digits) if digits.isdigit() and int(digits) < workers else None


class VmScheduling:
    """Work units of whole VMs: one VM's checks (or one check that belongs to no VM) per unit."""

    def __init__(self, config: pytest.Config, vm_names: Sequence[str], workers: int) -> None:
        self.config = config
        self.numnodes = workers
        self.partition = vm_partition(vm_names, workers)
        self.collection: list[str] | None = None
        self.registered: dict = {}  # node -> its collection (the same list on every node)
        self.assigned: dict = {}  # node -> {item index: done}
        self.queue: list[list[int]] = []  # units not handed out yet (a dead worker's unfinished ones first)

    # ---------------------------------------------------------------- the protocol's state

    @property
    def nodes(self) -> list:
        return list(self.assigned)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.registered) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        """A worker runs a check once it knows the next one (or its shutdown): one pending check is done."""
        if not self.collection_is_completed or self.queue:
            return False
        return all(list(work.values()).count(False) < 2 for work in self.assigned.values())

    @property
    def has_pending(self) -> bool:
        return bool(self.queue) or any(not done for work in self.assigned.values() for done in work.values())

    # ---------------------------------------------------------------- nodes

    def add_node(self, node) -> None:
        self.assigned[node] = {}

    def add_node_collection(self, node, collection: Sequence[str]) -> None:
        if self.collection is not None and list(collection) != self.collection:
            self._collection_differs(node, collection)
            return
        self.registered[node] = list(collection)

    def remove_node(self, node) -> str | None:
        """A worker that finished, or died: its unfinished checks go back to the queue; returns the check it
        was running when it died (None when it had finished)."""
        work = self.assigned.pop(node)
        pending = [index for index, done in work.items() if not done]
        if not pending:
            return None
        assert self.collection is not None
        self.queue.insert(0, pending)
        self._hand_out()
        return self.collection[pending[0]]

    # ---------------------------------------------------------------- checks

    def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
        self.assigned[node][item_index] = True

    def mark_test_pending(self, item: str) -> None:
        raise NotImplementedError("patchgate's VM scheduling does not re-run checks")

    def remove_pending_tests_from_node(self, node, indices: Sequence[int]) -> None:
        raise NotImplementedError("patchgate's VM scheduling does not steal checks")

    def schedule(self) -> None:
        """First call: split the collection into VM units and hand every unit out; later calls (a replacement
        worker collected) hand out what is still queued."""
        assert self.collection_is_completed
        if self.collection is None:
            collections = list(self.registered.items())
            if not collections:
                return
            first_node, first = collections[0]
            for node, collection in collections[1:]:
                if collection != first:
                    self.collection = first
                    self._collection_differs(node, collection, first_node)
                    return
            self.collection = first
            self._first_hand_out()
        self._hand_out()

    # ---------------------------------------------------------------- hand-out

    def _first_hand_out(self) -> None:
        assert self.collection is not None
        units: dict[str, list[int]] = {}
        for index, nodeid in enumerate(self.collection):
            units.setdefault(vm_of_nodeid(nodeid) or nodeid, []).append(index)
        by_index = {original_worker_index(str(node.gateway.id), self.numnodes): node
                    for node in self.assigned}
        leftover: list[list[int]] = []
        for key, indexes in units.items():
            node = by_index.get(self.partition.get(key, -1))
            if node is not None and not node.shutting_down:
                self._send(node, indexes)
            else:
                leftover.append(indexes)  # checks of no VM, or of a worker gone already: any worker
        self.queue.extend(leftover)
        self._hand_out()
        for node in self.nodes:
            if not node.shutting_down:
                node.shutdown()  # everything is handed out: the worker ends after its last check

    def _hand_out(self) -> None:
        """Queued units go round robin to workers not shutting down (a replacement, after a crash)."""
        live = [node for node in self.assigned if not node.shutting_down and node in self.registered]
        if not live or not self.queue:
            return
        turn = 0
        while self.queue:
            self._send(live[turn % len(live)], self.queue.pop(0))
            turn += 1
        for node in live:
            node.shutdown()

    def _send(self, node, indexes: list[int]) -> None:
        work = self.assigned[node]
        for index in indexes:
            work[index] = False
        node.send_runtest_some(indexes)

    def _collection_differs(self, node, collection: Sequence[str], first_node=None) -> None:
        from xdist.report import report_collection_diff

        first_node = first_node or next(iter(self.registered))
        message = report_collection_diff(self.collection or [], list(collection), str(first_node.gateway.id),
                                         str(node.gateway.id))
        self.config.hook.pytest_collectreport(report=pytest.CollectReport(
            nodeid=str(node.gateway.id), outcome="failed", longrepr=message, result=[]))
