"""patchgate benchmarks (``make bench`` / ``python -m bench``).

Each module measures one thing against the twin lab and returns plain dicts; ``__main__`` prints the tables,
writes ``bench/results.json`` and refreshes the table in ``docs/performance.md``. Targets are reported as
pass/fail in the tables, never asserted in unit tests: timings depend on the machine.
"""
