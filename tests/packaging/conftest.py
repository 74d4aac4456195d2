"""The ``wheels`` marker: tests that build and install the distributions (slow, opt-in)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "wheels: installs the built wheels into fresh venvs (./dev test-wheels)")
