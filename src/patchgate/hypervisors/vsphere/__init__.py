"""vSphere (vCenter) provider over pyVmomi; also drives govmomi's simulator for tests and rehearsals."""

from patchgate.hypervisors.vsphere.provider import VsphereHypervisor
from patchgate.hypervisors.vsphere.reaper import ReapAction, reap
from patchgate.hypervisors.vsphere.runtag import RunTag
from patchgate.hypervisors.vsphere.tasks import TaskCancelled, TaskWaiter

__all__ = ["ReapAction", "RunTag", "TaskCancelled", "TaskWaiter", "VsphereHypervisor", "reap"]
