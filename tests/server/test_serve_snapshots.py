"""The serve path's snapshots and the fit worker (docs/api.md 2.4, 7, 8.1): what a change takes to
reach serving, that requests never rebuild policies or parse model state, and that training
runs in the worker process with the same results."""

from __future__ import annotations

import dataclasses
import gc
import time

import numpy as np
import pytest

from levered_server.engine.stats import SUM_COLUMNS, CellStats
from levered_server.services import fit_worker, serve_cache, versions
from levered_server.services.scheduler import COOLDOWN_FACTOR, Trainer
from levered_server.store.models import Model, Optimization
from tests.server.factories import make_metric, make_optimization
from tests.server.test_training import REWARDS_SQL, seed

BOUND = serve_cache.TTL + 1.0  # a change made by another process reaches serving within this


def _serve(server, opt_id: str, anon: str, **body):
    resp = server.client.post(f"/api/v2/optimizations/{opt_id}/serve",
                              json={"anonymous_id": anon, **body})
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def cmab(org):
    opt = make_optimization(org, make_metric(org, sql=REWARDS_SQL)["id"])
    seed(org, opt, 40, "snap")
    resp = org.post(f"/api/v2/models/{opt['model_id']}/train")
    assert resp.status_code == 200 and resp.json()["version"] == 1, resp.text
    return opt


def test_training_runs_in_the_fit_worker_process(server, cmab):
    pool = server.runtime.fits
    assert pool is not None and not pool.inline and pool.started >= 1
    assert server.runtime.versions.cached(cmab["model_id"], 1) is not None


def test_a_dead_worker_is_replaced(server, org, cmab):
    pool = server.runtime.fits
    for worker in list(pool._idle):
        worker.proc.kill()
        worker.proc.wait()
    resp = org.post(f"/api/v2/models/{cmab['model_id']}/train")
    assert resp.status_code == 200 and resp.json()["version"] == 2, resp.text


def test_worker_errors_are_raised_in_the_server():
    pool = fit_worker.FitPool(workers=1)
    try:
        with pytest.raises(ValueError, match="unknown model type"):
            pool.run(versions.rebuild_policy, model_id="m", model_type="nope", version=1,
                     opt=versions.DesignSource({"design_factors": [
                         {"name": "a", "levels": ["x", "y"]}], "context_factors": []}, [], 0),
                     inputs={"policy": {}, "reward_type": "bool", "holdout_share": 0.0,
                             "bias": {}, "cells": versions.pack_cells(_stats(5))})
        assert pool.started == 1
    finally:
        pool.close()
    assert pool.started == 0


def test_in_process_changes_reach_the_next_request(server, org, cmab):
    oid = cmab["id"]
    assert _serve(server, oid, "a")["model_version"] == 1
    assert org.post(f"/api/v2/models/{cmab['model_id']}/train").json()["version"] == 2
    body = _serve(server, oid, "fresh-after-train")
    assert body["model_version"] == 2
    resp = org.patch(f"/api/v2/optimizations/{oid}", json={"status": "completed"})
    assert resp.status_code == 200, resp.text
    body = _serve(server, oid, "fresh-after-complete")
    assert body["propensity"] == 1.0 and body["in_holdout"] is False
    winner = org.get(f"/api/v2/optimizations/{oid}").json()["winner"]
    assert body["variant_number"] == winner["variant_number"]


def test_status_changed_by_another_process_serves_within_the_bound(server, org, cmab):
    oid = cmab["id"]
    _serve(server, oid, "warm")
    with server.runtime.store.system_session() as s:  # as another worker would, no invalidation
        s.get(Optimization, oid).status = "archived"
    changed = time.monotonic()
    while True:
        resp = server.client.post(f"/api/v2/optimizations/{oid}/serve",
                                  json={"anonymous_id": "poll", "dry_run": True})
        if resp.status_code == 409:
            break
        assert time.monotonic() - changed < BOUND, "the status change did not reach serving"
        time.sleep(0.05)
    assert resp.json()["error"]["code"] == "optimization_not_live"


def test_a_version_trained_elsewhere_is_rebuilt_behind_the_old_one(server, org, cmab, monkeypatch):
    """The old version keeps serving (with its own model_version) until the new policy is built
    in the background; the request path never rebuilds it."""
    monkeypatch.setattr(serve_cache, "TTL", 0.2)
    rt = server.runtime
    assert org.post(f"/api/v2/models/{cmab['model_id']}/train").json()["version"] == 2
    with rt.store.system_session() as s:
        model = s.get(Model, cmab["model_id"])
        v2_state, model.version = model.state, 1  # pretend v2 is not published yet
    cache = serve_cache.ServeCache(rt.store, versions.VersionCache(rt.fits))
    first = cache.get(cmab["id"])  # cold: builds v1 synchronously
    assert first.model_version == 1 and first.policy.version == 1
    with rt.store.system_session() as s:  # another process publishes v2
        model = s.get(Model, cmab["model_id"])
        model.version, model.state = 2, v2_state
    time.sleep(0.25)
    built = []
    real_build = cache.versions.build
    monkeypatch.setattr(cache.versions, "build",
                        lambda *a, **k: built.append(time.monotonic()) or real_build(*a, **k))
    stale = cache.get(cmab["id"])
    assert stale.model_version == 1 and not built  # answered at once, from the old snapshot
    deadline = time.monotonic() + 20
    while True:
        snap = cache.get(cmab["id"])
        assert snap.policy is not None and snap.policy.version == snap.model_version
        if snap.model_version == 2:
            break
        assert time.monotonic() < deadline, "v2 never reached serving"
        time.sleep(0.05)
    assert len(built) == 1
    cache.close()


def test_requests_do_not_read_the_model_state(server, cmab, monkeypatch):
    monkeypatch.setattr(serve_cache, "TTL", 0.0)
    cache = server.runtime.serve_cache
    cache.get(cmab["id"])
    statements = []
    from sqlalchemy import event

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    engine = server.runtime.store.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for i in range(5):
            _serve(server, cmab["id"], f"no-state-{i}", dry_run=True)
            cache._refresh(cmab["id"], wait_for_policy=True)  # what the background thread does
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements and not [s for s in statements if "state" in s.split("FROM")[0]
                               and "models" in s]


def test_invalidation_during_a_background_load_is_not_lost(server, cmab, monkeypatch):
    cache = server.runtime.serve_cache
    cache.get(cmab["id"])
    real_load = cache._load

    def load_then_change(*args, **kwargs):
        snap = real_load(*args, **kwargs)
        cache.invalidate(cmab["id"])  # a change lands while the old stamp was being read
        return snap

    monkeypatch.setattr(cache, "_load", load_then_change)
    cache._refresh(cmab["id"], wait_for_policy=True)
    monkeypatch.undo()
    assert cmab["id"] in cache._invalid  # the next request reloads


def test_prepared_allocations_equal_the_policy(server, cmab):
    serving = server.runtime.versions.cached(cmab["model_id"], 1)
    assert serving._cumulative, "the fit worker computes the likely context cells"
    for context in ({"country": "US"}, {"country": "DE"}, {}, {"country": "FR"}):
        codes = tuple(int(c) for c in serving.policy.encode(context))
        assert codes in serving._cumulative
        p, cum = serving._cumulative[codes]
        assert p == pytest.approx(list(serving.policy.allocation(context)), abs=0, rel=1e-15)
        assert cum[-1] == pytest.approx(1.0)


def _stats(n: int) -> CellStats:
    rng = np.random.default_rng(3)
    return CellStats(rng.integers(1, 3, n), rng.integers(-1, 3, (n, 2)), rng.random(n) < 0.1,
                     {c: rng.random(n) * 100 for c in SUM_COLUMNS}, ("country", "device"),
                     (("US", "DE", None), ("mobile", "desktop", "tv")))


def test_cells_pack_exactly_and_old_states_still_read():
    stats = _stats(50)
    for data in (versions.pack_cells(stats), stats.to_dict()):
        back = versions.unpack_cells(data)
        assert np.array_equal(back.variant, stats.variant)
        assert np.array_equal(back.context, stats.context)
        assert np.array_equal(back.in_holdout, stats.in_holdout)
        for c in SUM_COLUMNS:
            assert np.array_equal(back.sums[c], stats.sums[c])
        assert back.context_factors == stats.context_factors
        assert back.context_levels == stats.context_levels


def test_automatic_runs_cool_down(server):
    trainer = Trainer(server.runtime)
    trainer.every = 1
    trainer._not_before["opt"] = time.monotonic() + 60
    trainer.served("opt")
    assert not trainer._wake.is_set()  # cooling down: the serve does not wake the trainer
    trainer._not_before["opt"] = 0.0
    trainer.served("opt")
    assert trainer._wake.is_set()
    assert COOLDOWN_FACTOR >= 1


def test_a_model_training_elsewhere_is_looked_at_again_after_a_while(server, cmab):
    """While another replica (here: another caller) trains the model, the trainer backs off
    instead of re-trying at every serve."""
    from levered_server.services import models
    from levered_server.services.scheduler import BUSY_RETRY_SECONDS

    trainer = Trainer(server.runtime)
    trainer.every = 1
    assert trainer.due() == []  # first sight: the fixture's run counts as the last one
    trainer.served(cmab["id"])
    models._TRAINING.add(cmab["model_id"])  # "a training of this model is running"
    try:
        assert [m for _, m, _ in trainer.due()] == [cmab["model_id"]]
        trainer.run_due()
    finally:
        models._TRAINING.discard(cmab["model_id"])
    assert trainer._not_before[cmab["id"]] > time.monotonic() + BUSY_RETRY_SECONDS / 2
    trainer._wake.clear()
    trainer.served(cmab["id"])
    assert not trainer._wake.is_set() and trainer.due() == []
    # The run did not happen: the serves still count once the retry is due.
    trainer._not_before[cmab["id"]] = 0.0
    assert [m for _, m, _ in trainer.due()] == [cmab["model_id"]]


def test_with_stall_tracing_each_automatic_run_is_logged_with_its_duration(server, cmab,
                                                                          caplog):
    trainer = Trainer(server.runtime)
    assert not trainer.trace  # off unless LEVERED_STALL_TRACE_MS > 0
    trainer.trace, trainer.every = True, 1
    assert trainer.due() == []
    trainer.served(cmab["id"])
    with caplog.at_level("WARNING", logger="levered_server.training"):
        trainer.run_due()
    assert [r.getMessage().split(" ran ")[0] for r in caplog.records] == [
        f"automatic training of model {cmab['model_id']}"]
    assert caplog.records[0].getMessage().endswith(" ms")


def test_the_start_up_heap_is_frozen(server):
    from levered_server.runtime import GC_THRESHOLDS

    assert gc.get_freeze_count() > 0 and gc.get_threshold() == GC_THRESHOLDS


def test_training_swaps_the_snapshot_before_it_returns(server, org, cmab):
    """The publisher reloads the snapshot on its own thread: no request pays for the load."""
    oid = cmab["id"]
    _serve(server, oid, "warm-before-swap")
    version = org.post(f"/api/v2/models/{cmab['model_id']}/train").json()["version"]
    cache = server.runtime.serve_cache
    assert oid not in cache._invalid
    assert cache._items[oid].model_version == version
    assert _serve(server, oid, "first-after-swap")["model_version"] == version


def test_prestart_starts_one_worker_that_later_jobs_reuse():
    pool = fit_worker.FitPool(workers=1)
    try:
        pool.prestart()
        assert pool.started == 1
        worker = pool._idle[0]
        pool.run(fit_worker.preload)
        assert pool.started == 1 and pool._idle == [worker]
    finally:
        pool.close()


def test_a_version_fitted_before_the_hyperprior_rebuilds_as_it_was_fitted():
    """States record how their cmab prior was set; older "adaptive" ones had no hyperprior."""
    from levered_server.engine import policy
    from levered_server.engine.cmab import CmabPrior
    from levered_server.engine.train import generator, train

    rng = np.random.default_rng(5)
    n = 24
    exposures = rng.integers(5, 30, n).astype(float)
    rewards = rng.binomial(exposures.astype(int), 0.05).astype(float)
    sums = {c: np.zeros(n) for c in SUM_COLUMNS}
    sums.update(exposures=exposures, reward_count=rewards, reward_sum=rewards,
                reward_sum_sq=rewards)
    stats = CellStats(rng.integers(1, 3, n), rng.integers(0, 2, (n, 1)), np.zeros(n, bool),
                      sums, ("device",), (("mobile", "desktop"),))
    source = versions.DesignSource({"design_factors": [{"name": "a", "levels": ["x", "y"]}],
                                    "context_factors": []}, [], 0)
    knobs = policy.PolicySettings(min_observations=0)
    base = {"policy": dataclasses.asdict(knobs), "reward_type": "bool", "holdout_share": 0.0,
            "bias": {}, "cells": versions.pack_cells(stats)}

    def engine(prior: CmabPrior) -> np.ndarray:
        fitted = train("cmab", "bool", versions.design_of(source), stats,
                       rng=generator("m", 1), holdout_share=0.0, bias={}, settings=knobs,
                       prior=prior)
        assert fitted.version is not None
        return fitted.version.policy.allocation({"device": "mobile"})

    allocations = {}
    for kind in (versions.PRIOR_KIND, "adaptive"):
        rebuilt = versions.rebuild_policy(model_id="m", model_type="cmab", version=1, opt=source,
                                          inputs={**base, "prior": kind})
        allocations[kind] = rebuilt.policy.allocation({"device": "mobile"})
    assert allocations[versions.PRIOR_KIND] == pytest.approx(engine(CmabPrior()), abs=1e-12)
    assert allocations["adaptive"] == pytest.approx(engine(CmabPrior(hyper=0.0)), abs=1e-12)
    assert not np.allclose(allocations["adaptive"], allocations[versions.PRIOR_KIND])
