"""Helpers shared by the harness's own tests (real servers on 127.0.0.1)."""
