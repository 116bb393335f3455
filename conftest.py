"""Loads patchgate's pytest wiring (fixtures/) for the suites and the harness's own tests."""

pytest_plugins = [
    "fixtures.options",
    "fixtures.redaction",
    "fixtures.invariants",
    "fixtures.lab",
    "fixtures.progress",
    "fixtures.checks",
    "fixtures.allure_wiring",
    "fixtures.allure_check_result",
    "fixtures.allure_writer",
]
