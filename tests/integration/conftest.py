"""Fixtures for end-to-end runs: a real OpenBao dev server and govmomi's vSphere simulator on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:  # tests/support is shared with the other test folders
    sys.path.append(_TESTS)

from support.openbao import OpenBao, openbao, openbao_private  # noqa: F401  (pytest fixtures)

from patchgate.hypervisors.vsphere.simulator import Vcsim

from .vaultlab import VaultLab, provision


@pytest.fixture(scope="module")
def simulator(vcsim_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vcsim]:
    """A simulator of the module's own: simulator labs rename its VMs to the lab's names."""
    with Vcsim(binary=vcsim_binary, workdir=tmp_path_factory.mktemp("vcsim")) as sim:
        yield sim


@pytest.fixture(scope="module")
def vault_lab(openbao: OpenBao) -> VaultLab:  # noqa: F811 (the fixture imported above)
    """Canary credentials, a leases prefix, a signing key and a least-privilege policy in OpenBao."""
    return provision(openbao)
