"""The suites' ``host`` fixture: a testinfra Host on the check's VM, over the lab's own remoting session.

testinfra's plugin defines a ``host`` fixture too (a Host from ``--hosts``); among plugins the fixture registered
last wins, so :mod:`patchgate_pytest.plugin` registers this module at configure, after every plugin.
"""

from __future__ import annotations

import pytest

from patchgate.errors import LabError
from patchgate.model.observations import VmObservation
from patchgate.run.labrun import LabRun


@pytest.fixture
def host(request: pytest.FixtureRequest, lab_run: LabRun, vm_name: str, obs: VmObservation):
    """A testinfra Host on the VM over the lab's remoting: ``host.run("Get-Service WinRM")``."""
    from patchgate_pytest.testinfra_backend import testinfra_host

    session = lab_run.session(vm_name)
    if session is None:
        raise LabError("no remoting session is open to this VM", vm=vm_name)
    return testinfra_host(session)
