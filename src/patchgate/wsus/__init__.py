"""Installing through WSUS (lab ``install: {via: wsus}``): approve, offer, install, undo (docs/wsus.md)."""
