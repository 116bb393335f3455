"""hypervisors."""
