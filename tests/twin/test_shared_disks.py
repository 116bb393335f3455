"""Two runs of one twin lab share its disks (as two harnesses share a vCenter's datastores), each holding the
leases of its own VMs. A run that ends must not touch the files of a VM another run now holds: closing one twin
while the other is half-way through writing a package to its VM leaves that write intact."""

from __future__ import annotations

from pathlib import Path

from patchgate.config import load_lab
from patchgate_twin.catalog import Catalog
from patchgate_twin.lab import TwinDisks, TwinLab

ROOT = Path(__file__).resolve().parents[2]
VM = "ws25-mbr-01"


def _twin(state: Path) -> TwinLab:
    lab = load_lab(ROOT / "labs" / "twin.yaml")
    return TwinLab(lab, Catalog.load(), disks=TwinDisks(lab.name, state))


def test_a_run_ending_leaves_another_runs_half_written_file_alone(tmp_path: Path) -> None:
    first, second = _twin(tmp_path), _twin(tmp_path)
    first.revert(VM)  # the first run used the VM, reverted it and gave its lease back
    second.revert(VM)  # the second run holds it now and is writing a package to it
    writer = second.store(VM).writer(sha1=False)
    writer.write(b"half of a package")
    first.close()
    writer.write(b", and the rest")
    digest = writer.commit()
    second.files(VM).link(r"c:\programdata\patchgate\staging\kb1\a.msu", digest)
    assert second.files(VM).read_bytes(r"c:\programdata\patchgate\staging\kb1\a.msu") == \
        b"half of a package, and the rest"
    second.close()


def test_a_revert_sweeps_what_the_vm_no_longer_names_and_half_written_files(tmp_path: Path) -> None:
    twin = _twin(tmp_path)
    twin.revert(VM)
    store = twin.store(VM)
    twin.files(VM).write_bytes(r"c:\staged.bin", b"content of the changed guest")
    left = store.writer(sha1=False)
    left.write(b"a copy that never finished")
    twin.revert(VM)
    assert not any(store.incoming.iterdir())
    assert not twin.files(VM).exists(r"c:\staged.bin")
    assert {p.name for p in store.folder.iterdir() if p.is_file()} <= TwinLab._referenced(twin.vm(VM))
    twin.close()
