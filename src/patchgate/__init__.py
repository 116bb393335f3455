"""patchgate: gate Windows updates on a lab run that proves hotpatch, WSUS, services and firewall survive."""

__version__ = "0.1.0"
