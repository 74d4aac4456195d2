"""The fault suite: a real server on loopback, pushed by slow, careless or hostile clients.

Tests marked `long_faults` (a minute or more each) are skipped unless selected:
`pytest -m long_faults tests/faults` (docs/server.md "Limits and hardening").
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long_faults: a long fault test, run only with -m long_faults")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "long_faults" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="a long fault test: run it with -m long_faults")
    for item in items:
        if "long_faults" in item.keywords:
            item.add_marker(skip)
