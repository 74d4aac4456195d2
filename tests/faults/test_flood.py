"""A flood of large ingest batches: memory stays bounded by the body budget, nothing fails
but with 503 + Retry-After, serving goes on (its latency is measured in docs/benchmarks.md,
not asserted here)."""

from __future__ import annotations

import pytest

from tests.faults import flood
from tests.faults.server import launch, log_of

#: docs/server.md "Limits and hardening": start (~190 MB) + the warehouse memory limit (512 MB)
#: + the body budget's bodies parsed (~10 × 16 MB), rounded up.
RSS_BOUND_MB = 900


@pytest.mark.long_faults
def test_100_concurrent_large_batches_keep_memory_bounded(tmp_path):
    server, optimization = launch(tmp_path)
    assert server.process is not None
    try:
        result = flood.run(server.port, server.api_key, optimization, server.process.pid,
                           senders=100, seconds=20)
        assert set(result["statuses"]) <= {200, 503}, result
        assert result["statuses"].get(200, 0) > 0 and result["serves"] > 0, result
        assert result["rss_max_mb"] <= RSS_BOUND_MB, result
        assert server.api("GET", "/healthz")[0] == 200
    finally:
        server.stop()
    text = log_of(server)
    assert "Traceback" not in text and " 500 " not in text
