"""Hyper-V: the provider for ``hypervisor.kind: hyperv`` (the Hyper-V module's cmdlets on the host, over PSRP)."""
