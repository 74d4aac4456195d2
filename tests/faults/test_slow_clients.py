"""Slow clients beyond the connection cap: health and serving still answer, the slow ones are
cut off at their deadlines, the log says so in a few lines."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults import slow_clients
from tests.faults.server import launch, log_of, problem_lines

LIMITS = {"LEVERED_MAX_CONNECTIONS": "100", "LEVERED_HEADER_TIMEOUT_SECONDS": "2",
          "LEVERED_BODY_TIMEOUT_SECONDS": "3"}


def _hold(port: int, key: str, optimization: str, *, headers: int, bodies: int,
          seconds: float) -> slow_clients.Outcome:
    slow_clients.raise_own_file_limit(headers + bodies + 200)
    return asyncio.run(slow_clients.run(port, headers=headers, bodies=bodies, seconds=seconds,
                                        key=key, optimization=optimization))


def test_slow_clients_over_the_cap_do_not_starve_health_and_serving(tmp_path):
    server, optimization = launch(tmp_path, **LIMITS)
    try:
        before = len(log_of(server).splitlines())
        out = _hold(server.port, server.api_key, optimization, headers=120, bodies=30, seconds=6)
        assert out.probes and out.failed() == []  # every /healthz and serve got its 200
        assert out.closed_by_server == 150  # no slow client outlived its deadline or the cap
        assert out.answered_408 > 0
        assert server.api("GET", "/healthz")[0] == 200
    finally:
        server.stop()
    text = "\n".join(log_of(server).splitlines()[before:])
    problems = problem_lines(text)
    assert "Traceback" not in text and " 500 " not in text
    assert len(problems) < 20, problems  # a line per kind per interval, not per connection
    assert any("idle connection(s) to make room over the cap of 100" in p for p in problems)
    assert any("did not send their headers within 2s" in p for p in problems)
    assert any("the body did not arrive within 3s" in p for p in problems)


@pytest.mark.long_faults
def test_1200_slow_clients_at_the_default_limits(tmp_path):
    # The attack: 1,000 clients trickling headers, 200 trickling bodies, for 40 s.
    server, optimization = launch(tmp_path)
    try:
        out = _hold(server.port, server.api_key, optimization, headers=1000, bodies=200,
                    seconds=40)
        assert out.probes and out.failed() == []
        assert out.closed_by_server == 1200
    finally:
        server.stop()
    text = log_of(server)
    assert "Traceback" not in text
    assert len(problem_lines(text)) < 40
