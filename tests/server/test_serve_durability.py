"""Serving as replicas need it: first assignments are a function of (optimization, user,
version), a 2xx means the lock and exposure are committed, and the stored lock wins."""

from __future__ import annotations

import collections
import datetime as dt

import pytest

from levered_server.services.outbox import decode
from levered_server.services.serve_log import ServeLog, ServeWrite
from levered_server.services.serving import assignment_rng
from levered_server.store.locks import LockStore
from tests.server.factories import make_optimization


def _serve(server, opt_id, user, **body):
    resp = server.client.post(f"/api/v2/optimizations/{opt_id}/serve",
                              json={"anonymous_id": user, **body})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_first_assignment_is_a_function_of_optimization_user_and_version(server, org):
    opt = make_optimization(org, holdout_percentage=0)
    users = [f"det-{i}" for i in range(300)]
    # Dry runs write no lock, so each draw is fresh: the same user gets the same variant.
    first = {u: _serve(server, opt["id"], u, dry_run=True)["variant_number"] for u in users}
    again = {u: _serve(server, opt["id"], u, dry_run=True)["variant_number"] for u in users}
    assert first == again
    # The real serve (which writes the lock) agrees with what any replica would have drawn.
    served = {u: _serve(server, opt["id"], u)["variant_number"] for u in users}
    assert served == first
    # ...and the draws still follow the allocation (uniform over 5 variants here).
    counts = collections.Counter(first.values())
    assert len(counts) == 5 and min(counts.values()) > 300 / 5 * 0.5


def test_assignment_seed_depends_on_the_version():
    a = [assignment_rng("o", f"u{i}", 1).random() for i in range(50)]
    b = [assignment_rng("o", f"u{i}", 2).random() for i in range(50)]
    assert a == [assignment_rng("o", f"u{i}", 1).random() for i in range(50)]
    assert a != b and all(0 <= x < 1 for x in a + b)


def test_a_2xx_serve_is_committed_before_it_is_answered(server, org):
    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime
    rt.outbox.stop()  # keep the exposure in the outbox, where the serve's commit put it
    body = _serve(server, opt["id"], "durable-1")
    # No flush: the response came after the commit, so the lock and the exposure are there.
    assert rt.locks.get(opt["id"], "durable-1") == (body["variant_number"], body["propensity"])
    with rt.store.engine.connect() as conn:
        payloads = [p for (p,) in conn.exec_driver_sql(
            "SELECT payload FROM exposure_outbox WHERE organization_id = "
            + ("%s" if server.backend == "postgres" else "?"), (org.id,))]
    assert [decode(p)["exposure_id"] for p in payloads] == [body["exposure_id"]]
    # Readers flush: the mover copies it into the warehouse and empties the outbox.
    rt.exposures.flush(org.id)
    assert _stored(rt, org, body["exposure_id"]) == [body["variant_number"]]
    assert _outbox_rows(rt) == 0


def _outbox_rows(rt) -> int:
    with rt.store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM exposure_outbox").scalar())


def _stored(rt, org, exposure_id):
    driver = rt.warehouses.managed(org.id)
    rows = driver.query("SELECT variant_number FROM managed_dw.exposures "
                        f"WHERE exposure_id = '{exposure_id}'", limit=5, timeout=10).rows
    return [r["variant_number"] for r in rows]


def test_the_stored_lock_wins_over_a_concurrent_first_assignment(server, org):
    """Another replica (on another model version) locked the user first: the answer and the
    exposure carry the stored variant."""
    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime
    now = dt.datetime.now(dt.UTC)
    lock = {"organization_id": org.id, "optimization_id": opt["id"], "anonymous_id": "race",
            "variant_number": 2, "propensity": 0.25, "model_version": 7, "assigned_at": now}
    assert rt.locks.insert([lock]) == {(opt["id"], "race"): (2, 0.25)}
    built = []
    log = ServeLog(rt.locks, rt.outbox)
    write = ServeWrite(org.id, (opt["id"], "race"), {**lock, "variant_number": 3,
                                                     "propensity": 0.2, "model_version": 8},
                       (3, 0.2), lambda n, p: built.append((n, p)) or _row(org, opt, n, p))
    log.submit(write)
    log.flush(org.id)
    assert write.future.result(5) == (2, 0.25)
    assert built == [(2, 0.25)]
    assert rt.locks.get(opt["id"], "race") == (2, 0.25)
    assert _stored(rt, org, "e-2-0.25") == [2]


def test_a_failed_commit_is_not_acknowledged(server, org):
    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime

    class Broken(LockStore):
        def commit(self, rows, outbox, **_options):
            raise OSError("disk full")

    log = ServeLog(Broken(rt.store))
    write = ServeWrite(org.id, (opt["id"], "broken"), None, (1, 0.2),
                       lambda n, p: _row(org, opt, n, p))
    log.submit(write)
    log.flush()
    with pytest.raises(OSError):
        write.future.result(5)


def _row(org, opt, n, p):
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return {"exposure_id": f"e-{n}-{p}", "anonymous_id": "race", "optimization_id": opt["id"],
            "variant": "{}", "variant_number": n, "context": "{}", "in_holdout": False,
            "propensity": p, "model_version": 0, "source": "serve", "idempotency_key": None,
            "timestamp_utc": now, "organization_id": org.id, "created_at": now}


def test_rows_a_crash_left_are_moved_once_whichever_organization_moves_first(server, org,
                                                                            other_org):
    """A crash between the warehouse's commit and the outbox's delete leaves rows in both; a
    later process moves them without duplicating, even when a reader flushes another
    organization first."""
    from levered_server.services.outbox import OutboxMover, encode

    rt = server.runtime
    rt.outbox.stop()  # this test plays the next process's mover itself
    opt = make_optimization(other_org, holdout_percentage=0)
    rows = [{**_row(other_org, opt, 2, 0.25), "exposure_id": f"left-{i}"} for i in range(3)]
    rt.warehouses.managed(other_org.id).append_exposures(rows)  # committed before the crash
    mine = {**_row(org, make_optimization(org, holdout_percentage=0), 1, 0.2),
            "exposure_id": "left-mine"}
    rt.locks.commit([], lambda _held: [(org.id, encode(mine))]
                    + [(other_org.id, encode(r)) for r in rows])
    mover = OutboxMover(rt.store, rt.warehouses)
    mover.flush(org.id)  # a reader of another organization moves its rows first
    assert _stored(rt, org, "left-mine") == [1]
    mover.flush()
    for r in rows:
        assert _stored(rt, other_org, r["exposure_id"]) == [2]


def _lock_row(org, opt, user, n=1, p=0.2):
    return {"organization_id": org.id, "optimization_id": opt["id"], "anonymous_id": user,
            "variant_number": n, "propensity": p, "model_version": 0,
            "assigned_at": dt.datetime.now(dt.UTC)}


def _write(org, opt, user, n, p):
    """A serve's writes for `user` drawn `(n, p)`; its exposure id names the variant it
    records (`e-{user}-{variant}`)."""
    def row(n2, p2):
        return {**_row(org, opt, n2, p2), "exposure_id": f"e-{user}-{n2}", "anonymous_id": user}
    return ServeWrite(org.id, (opt["id"], user), _lock_row(org, opt, user, n, p), (n, p), row)


def test_the_serves_of_one_loop_turn_are_committed_together(server, org):
    import asyncio

    from levered_server.services.loop_group import LoopGroup

    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime
    log = ServeLog(rt.locks, rt.outbox)
    log.start()
    try:
        writes = [ServeWrite(org.id, (opt["id"], f"turn-{i}"), _lock_row(org, opt, f"turn-{i}"),
                             (1, 0.2), None) for i in range(20)]

        async def serve_all() -> list:
            group = LoopGroup(log)
            return await asyncio.gather(*(group.commit(w) for w in writes))

        assert asyncio.run(serve_all()) == [(1, 0.2)] * 20
        assert log.commits == 1 and log.committed == 20
        assert all(rt.locks.get(opt["id"], f"turn-{i}") == (1, 0.2) for i in range(20))
    finally:
        log.stop()


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_a_serve_waits_for_a_busy_sqlite_writer_and_is_then_committed(server, org):
    """While another connection holds SQLite's write lock, the writer thread polls for it
    (no busy-handler sleeps): the serve is not acknowledged before, and is right after."""
    import asyncio
    import sqlite3
    import threading

    from levered_server.services.loop_group import LoopGroup

    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime
    log = ServeLog(rt.locks, rt.outbox)
    log.start()
    other = sqlite3.connect(rt.store.engine.url.database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        write = ServeWrite(org.id, (opt["id"], "busy"), _lock_row(org, opt, "busy"), (1, 0.2),
                           None)
        result: list = []

        def serve() -> None:
            async def one() -> tuple[int, float]:
                return await LoopGroup(log).commit(write)
            result.append(asyncio.run(one()))

        thread = threading.Thread(target=serve)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive() and not write.future.done()  # not acknowledged yet
        other.execute("COMMIT")
        thread.join(10)
        assert result == [(1, 0.2)]
        assert rt.locks.get(opt["id"], "busy") == (1, 0.2)
    finally:
        other.close()
        log.stop()


@pytest.mark.parametrize("keys", [1, 3, 500])
def test_the_sqlite_read_back_probes_the_primary_key_instead_of_scanning_every_lock(server, keys):
    from levered_server.store.locks import read_back_sqlite

    if server.runtime.store.engine.dialect.name != "sqlite":
        pytest.skip("the SQLite statement (PostgreSQL joins unnest arrays)")
    with server.runtime.store.engine.connect() as conn:
        plan = [row[3] for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + read_back_sqlite(keys), tuple(["x"] * 2 * keys)).all()]
    assert any(step.startswith("SEARCH l USING") for step in plan), plan
    assert not any(step.startswith(("SCAN l", "SCAN locks")) for step in plan), plan


def test_the_postgres_read_back_probes_the_primary_key_even_as_a_generic_plan(server):
    import json

    if server.runtime.store.engine.dialect.name != "postgresql":
        pytest.skip("the PostgreSQL statement")
    statement = server.runtime.locks._read_back_pg.replace("%s::jsonb", "$1")
    with server.runtime.store.engine.connect() as conn:
        driver = conn.connection.driver_connection
        driver.execute("SET plan_cache_mode = force_generic_plan")
        driver.execute(f"PREPARE read_back(jsonb) AS {statement}")
        try:
            plan = "\n".join(row[0] for row in driver.execute(
                f"EXPLAIN EXECUTE read_back('{json.dumps([['o', 'a'], ['o', 'b']])}')").fetchall())
        finally:
            driver.execute("DEALLOCATE read_back")
            driver.execute("RESET plan_cache_mode")
    assert "Index Scan" in plan and "Seq Scan on locks" not in plan, plan


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_the_loop_commits_a_serve_behind_a_short_sqlite_write_itself(server, org):
    """A write lock held for a moment (the outbox mover's delete) is waited for on the event
    loop, retried without blocking it: no writer thread is running here, so the serve can
    only have been committed by the loop."""
    import asyncio
    import sqlite3

    from levered_server.services.loop_group import LoopGroup

    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime
    log = ServeLog(rt.locks, rt.outbox)  # not started: no writer thread
    other = sqlite3.connect(rt.store.engine.url.database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        write = ServeWrite(org.id, (opt["id"], "short"), _lock_row(org, opt, "short"), (1, 0.2),
                           None)

        async def one() -> tuple[tuple[int, float], int]:
            loop = asyncio.get_running_loop()
            ticks = 0

            async def ticker() -> None:  # the loop keeps turning meanwhile
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.001)

            tick = loop.create_task(ticker())
            loop.call_later(0.02, other.execute, "COMMIT")
            held = await LoopGroup(log).commit(write)
            tick.cancel()
            return held, ticks

        held, ticks = asyncio.run(one())
        assert held == (1, 0.2) and ticks >= 5
        assert log.commits == 1 and rt.locks.get(opt["id"], "short") == (1, 0.2)
    finally:
        other.close()


def test_an_outbox_payload_lands_in_the_warehouse_as_the_row_it_encodes(server, org):
    """The mover hands the payloads to the warehouse to parse (DuckDB's `from_json`,
    PostgreSQL's `jsonb`): every column arrives as `append_exposures` writes it."""
    from levered_server.services.outbox import encode

    opt = make_optimization(org, holdout_percentage=0)
    driver = server.runtime.warehouses.managed(org.id)
    base = {**_row(org, opt, 3, 1 / 6), "variant": '{"headline": "Grüße \\"quoted\\""}',
            "context": '{"country": "DE", "device_type": null}', "in_holdout": True,
            "model_version": 4}
    by_payload = {**base, "exposure_id": "e-payload", "idempotency_key": "k-payload"}
    by_row = {**base, "exposure_id": "e-row", "idempotency_key": "k-row"}
    driver.append_exposure_payloads([encode(by_payload)])
    driver.append_exposures([by_row])
    sql = ("SELECT exposure_id, anonymous_id, optimization_id, variant_number, in_holdout, "
           "propensity, model_version, source, idempotency_key, timestamp_utc, organization_id, "
           "created_at, CAST(variant AS VARCHAR) AS variant, CAST(context AS VARCHAR) AS context "
           "FROM managed_dw.exposures WHERE exposure_id IN ('e-payload', 'e-row') "
           "ORDER BY exposure_id")
    got, want = driver.query(sql, limit=5, timeout=10).rows
    assert (got.pop("exposure_id"), got.pop("idempotency_key")) == ("e-payload", "k-payload")
    assert (want.pop("exposure_id"), want.pop("idempotency_key")) == ("e-row", "k-row")
    assert got == want
    assert got["propensity"] == 1 / 6 and got["in_holdout"] is True
    assert "Grüße" in got["variant"]


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_postgres_serves_are_committed_by_the_loop_and_survive_a_lost_connection(server, org):
    """On PostgreSQL the event loop commits on an asyncio connection of its own; when
    PostgreSQL drops it, the next serve reconnects and is committed (no error, no loss)."""
    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime
    first = _serve(server, opt["id"], "pg-loop-1")
    committer = rt.serve_log._async
    assert committer is not None and committer._conn is not None  # the loop's connection
    backend = committer._conn.info.backend_pid
    with rt.store.engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_terminate_backend(%s)", (backend,))
    second = _serve(server, opt["id"], "pg-loop-2")
    assert committer._conn.info.backend_pid != backend
    for user, body in (("pg-loop-1", first), ("pg-loop-2", second)):
        assert rt.locks.get(opt["id"], user) == (body["variant_number"], body["propensity"])
        rt.exposures.flush(org.id)
        assert _stored(rt, org, body["exposure_id"]) == [body["variant_number"]]


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_the_postgres_loop_commit_keeps_a_lock_stored_first_and_fails_only_its_serve(server,
                                                                                       org):
    """The loop's one-statement commit writes the exposures of the locks it inserts; a user
    locked first elsewhere gets the stored variant, and its exposure is written from it.
    When that second write fails, only that serve is failed: the others were committed."""
    import asyncio

    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime

    # "Another replica" locked this user first.
    rt.locks.insert([_lock_row(org, opt, "pg-first", 2, 0.25)])
    log = ServeLog(rt.locks, rt.outbox)
    fresh, raced = _write(org, opt, "pg-fresh", 3, 0.2), _write(org, opt, "pg-first", 4, 0.2)
    asyncio.run(log.commit_async([fresh, raced]))
    assert (fresh.future.result(0), raced.future.result(0)) == ((3, 0.2), (2, 0.25))
    rt.exposures.flush(org.id)
    assert _stored(rt, org, "e-pg-fresh-3") == [3]
    assert _stored(rt, org, "e-pg-first-2") == [2] and _stored(rt, org, "e-pg-first-4") == []
    log._async.close()

    rt.locks.insert([_lock_row(org, opt, "pg-second", 1, 0.5)])
    log = ServeLog(rt.locks, rt.outbox)
    fresh, raced = _write(org, opt, "pg-fresh-2", 3, 0.2), _write(org, opt, "pg-second", 4, 0.2)
    built = raced.exposure

    def fails_for_the_stored_lock(n, p):
        if n == 1:
            raise OSError("cannot build")
        return built(n, p)

    raced.exposure = fails_for_the_stored_lock
    asyncio.run(log.commit_async([fresh, raced]))
    assert fresh.future.result(0) == (3, 0.2)
    with pytest.raises(OSError, match="cannot build"):
        raced.future.result(0)
    log._async.close()


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_a_returning_user_drawn_as_stored_costs_one_postgres_statement(server, org):
    """A returning user's serve draws the stored variant again when the model version and
    context are the same: the loop's one statement finds the lock and writes the exposure.
    A user stored with another variant takes a second statement for its exposure, and so
    does a user with two serves in the batch."""
    import asyncio

    from levered_server.store.pg_async_commit import AsyncCommitter

    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime

    rt.locks.insert([_lock_row(org, opt, "pg-back", 3, 0.2), _lock_row(org, opt, "pg-moved", 1, 0.5),
                     _lock_row(org, opt, "pg-twice", 3, 0.2)])  # earlier visits
    log = ServeLog(rt.locks, rt.outbox)
    log._async = committer = AsyncCommitter(rt.locks)
    statements = []
    run = committer._run

    async def counted(statement):
        statements.append(statement[0].split()[0])
        return await run(statement)

    committer._run = counted
    back, moved = _write(org, opt, "pg-back", 3, 0.2), _write(org, opt, "pg-moved", 4, 0.2)
    asyncio.run(log.commit_async([back]))
    assert back.future.result(0) == (3, 0.2) and len(statements) == 1
    asyncio.run(log.commit_async([moved]))
    assert moved.future.result(0) == (1, 0.5) and len(statements) == 3  # + its exposure
    # The same user twice in one batch, drawn differently (two contexts): both serves get
    # the stored lock, and no exposure carries the other draw.
    same, other = _write(org, opt, "pg-twice", 3, 0.2), _write(org, opt, "pg-twice", 4, 0.2)
    asyncio.run(log.commit_async([same, other]))
    assert same.future.result(0) == other.future.result(0) == (3, 0.2)
    rt.exposures.flush(org.id)
    assert _stored(rt, org, "e-pg-back-3") == [3]
    assert _stored(rt, org, "e-pg-moved-1") == [1] and _stored(rt, org, "e-pg-moved-4") == []
    assert _stored(rt, org, "e-pg-twice-3") == [3] and _stored(rt, org, "e-pg-twice-4") == []
    committer.close()


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_a_postgres_loop_commit_reads_back_a_lock_committed_while_it_waited(server, org):
    """A lock that another replica commits while the loop's insert of the same user waits
    for it wins: the serve gets the stored variant, and its exposure is written from it."""
    import asyncio
    import time

    import psycopg

    from levered_server.store.models import Lock

    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime
    raced = _write(org, opt, "pg-raced", 4, 0.2)
    log = ServeLog(rt.locks, rt.outbox)
    cargs, cparams = rt.store.engine.dialect.create_connect_args(rt.store.engine.url)

    async def race() -> None:
        with psycopg.connect(*cargs, **cparams) as holder, \
                psycopg.connect(*cargs, **cparams, autocommit=True) as watcher:
            holder.execute(  # "another replica", not committed yet
                f"INSERT INTO {Lock.__tablename__} (organization_id, optimization_id, "
                "anonymous_id, variant_number, propensity, model_version, assigned_at) "
                "VALUES (%s, %s, 'pg-raced', 2, 0.25, 1, now())", (org.id, opt["id"]))
            commit = asyncio.create_task(log.commit_async([raced]))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE %s", (f"WITH ins AS (INSERT INTO {Lock.__tablename__} %",)
            ).fetchone()[0]:
                await asyncio.sleep(0.02)
            holder.commit()
            await commit

    asyncio.run(race())
    assert raced.future.result(0) == (2, 0.25)
    rt.exposures.flush(org.id)
    assert _stored(rt, org, "e-pg-raced-2") == [2] and _stored(rt, org, "e-pg-raced-4") == []
    log._async.close()


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_a_postgres_loop_commit_that_postgres_refuses_fails_its_serves_with_its_error(server,
                                                                                       org):
    """The loop's commit goes through libpq directly: a statement PostgreSQL refuses fails
    the batch's serves with psycopg's error for it (here a lock for an optimization that does
    not exist), and the next batch commits on the same connection."""
    import asyncio

    import psycopg

    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime
    now = dt.datetime.now(dt.UTC)

    def write(opt_id, user):
        lock = {"organization_id": org.id, "optimization_id": opt_id, "anonymous_id": user,
                "variant_number": 1, "propensity": 0.5, "model_version": 1, "assigned_at": now}
        return ServeWrite(org.id, (opt_id, user), lock, (1, 0.5),
                          lambda n, p: {**_row(org, opt, n, p), "exposure_id": f"e-{user}",
                                        "anonymous_id": user})

    log = ServeLog(rt.locks, rt.outbox)

    async def two_batches() -> tuple[ServeWrite, ServeWrite, int, int]:
        refused = write("no-such-optimization", "pg-refused")
        await log.commit_async([refused])
        backend = log._async._conn.info.backend_pid
        accepted = write(opt["id"], "pg-accepted")
        await log.commit_async([accepted])
        return refused, accepted, backend, log._async._conn.info.backend_pid

    refused, accepted, before, after = asyncio.run(two_batches())
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        refused.future.result(0)
    assert accepted.future.result(0) == (1, 0.5)
    assert before == after  # the refusal did not cost the connection
    assert rt.locks.get(opt["id"], "pg-refused") is None
    assert rt.locks.get(opt["id"], "pg-accepted") == (1, 0.5)
    log._async.close()


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_the_postgres_loop_committer_follows_the_event_loop_it_is_awaited_on(server, org):
    """The committer's connection is watched by a reader on one event loop: awaited on
    another (a restarted loop), it opens a connection there instead of waiting on the old."""
    import asyncio

    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime
    log = ServeLog(rt.locks, rt.outbox)
    first, second = _write(org, opt, "pg-loop-a", 2, 0.5), _write(org, opt, "pg-loop-b", 2, 0.5)
    asyncio.run(log.commit_async([first]))
    asyncio.run(asyncio.wait_for(log.commit_async([second]), 10))
    assert first.future.result(0) == second.future.result(0) == (2, 0.5)
    assert rt.locks.get(opt["id"], "pg-loop-b") == (2, 0.5)
    log._async.close()


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_the_outbox_mover_starts_the_sqlite_wal_over(server, org, monkeypatch):
    """Serves keep SQLite's WAL growing; the mover's checkpoint copies all of it into the
    database without taking the write lock, so the next commits write from the start of the
    file again and it does not grow without bound while serving goes on."""
    import os

    from levered_server.services import outbox

    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime
    wal = rt.store.engine.url.database + "-wal"
    rt.outbox.flush()
    for i in range(50):
        _serve(server, opt["id"], f"wal-{i}")
    grown = os.path.getsize(wal)
    assert grown > 0
    monkeypatch.setattr(outbox, "WAL_CHECKPOINT_BYTES", 0)
    monkeypatch.setattr(outbox, "WAL_TRUNCATE_BYTES", 1 << 40)  # never the blocking mode
    rt.outbox._checkpoint()
    with rt.store.engine.connect() as conn:
        _busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    assert frames == copied  # all of it is in the database
    for i in range(50):
        _serve(server, opt["id"], f"wal-again-{i}")
    # Rewound: the same serves wrote over the start of the file instead of after its end.
    assert os.path.getsize(wal) <= grown * 1.2
    assert _serve(server, opt["id"], "wal-after")["variant_number"] >= 1  # serving goes on


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_postgres_commits_that_lock_the_same_users_in_another_order_do_not_deadlock(
        server, org, monkeypatch):
    """Two replicas' batches that share users are inserted in key order, so one waits for
    the other instead of each holding a user the other needs (PostgreSQL breaks a deadlock
    after its deadlock_timeout, and the batch is retried: a stall of a second)."""
    import threading
    import time

    from levered_server.store.models import Lock

    opt = make_optimization(org, holdout_percentage=0)
    rt = server.runtime
    now = dt.datetime.now(dt.UTC)

    def lock(user, n):
        return {"organization_id": org.id, "optimization_id": opt["id"], "anonymous_id": user,
                "variant_number": n, "propensity": 0.2, "model_version": 1, "assigned_at": now}

    failures: list[BaseException] = []
    # A deadlock is retried on a new connection (`LockStore._run`), after PostgreSQL's
    # deadlock_timeout: count the connections dropped.
    dropped = []
    drop = rt.locks._drop
    monkeypatch.setattr(rt.locks, "_drop", lambda conn: (dropped.append(conn), drop(conn)))

    def commit(rows):
        try:
            rt.locks.commit(rows, lambda _held: [])
        except BaseException as exc:  # noqa: BLE001 - asserted below
            failures.append(exc)

    def waiting(n):
        # Until n of our lock inserts wait for a row lock (or 5 s), watched on a connection
        # of its own: a pooled one could keep a committing thread waiting for the pool.
        import psycopg

        cargs, cparams = rt.store.engine.dialect.create_connect_args(rt.store.engine.url)
        deadline = time.monotonic() + 5
        with psycopg.connect(*cargs, **cparams, autocommit=True) as conn:
            while time.monotonic() < deadline and conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE %s", (f"INSERT INTO {Lock.__tablename__} %",)
            ).fetchone()[0] < n:
                time.sleep(0.02)

    # A third writer holds "u-b" uncommitted, so that the first batch takes "u-a" and waits;
    # the second batch lists "u-c" before "u-a": taken in that order, it would hold "u-c"
    # (which the first needs next) while waiting for "u-a".
    with rt.store.engine.connect() as holder:
        holder.exec_driver_sql(
            f"INSERT INTO {Lock.__tablename__} (organization_id, optimization_id, anonymous_id, "
            "variant_number, propensity, model_version, assigned_at) "
            "VALUES (%s, %s, 'u-b', 3, 0.2, 1, now())", (org.id, opt["id"]))
        first = threading.Thread(target=commit,
                                 args=([lock("u-a", 1), lock("u-b", 1), lock("u-c", 1)],))
        first.start()
        waiting(1)
        second = threading.Thread(target=commit, args=([lock("u-c", 2), lock("u-a", 2)],))
        second.start()
        waiting(2)
        holder.commit()
    first.join(10)
    second.join(10)
    assert not failures and not dropped, (failures, dropped)
    got = {u: rt.locks.get(opt["id"], u) for u in ("u-a", "u-b", "u-c")}
    assert got == {"u-a": (1, 0.2), "u-b": (3, 0.2), "u-c": (1, 0.2)}


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_the_outbox_mover_vacuums_the_postgres_outbox_it_empties(server, org, monkeypatch):
    """The outbox is a queue whose rows die a second after they are born: the mover vacuums
    it every `VACUUM_ROWS` rows it moved, so that its claims stop walking dead rows where
    autovacuum is off or behind (it is off on this project's machines)."""
    import time

    from sqlalchemy import event, text

    from levered_server.services import outbox

    rt = server.runtime
    rt.outbox.stop()  # this test moves and vacuums with a mover of its own
    opt = make_optimization(org, holdout_percentage=0)
    monkeypatch.setattr(outbox, "VACUUM_ROWS", 20)
    mover = outbox.OutboxMover(rt.store, rt.warehouses)
    sent: list[str] = []

    def spy(_conn, _cursor, statement, *_args):
        if statement.startswith("VACUUM"):
            sent.append(statement)

    def vacuums() -> int:
        with rt.store.engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT vacuum_count FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema() AND relname = 'exposure_outbox'")).one()[0])

    before = vacuums()
    event.listen(rt.store.engine, "before_cursor_execute", spy)
    try:
        for i in range(15):
            _serve(server, opt["id"], f"vacuum-{i}")
        mover.flush()
        mover._vacuum()
        assert sent == []  # 15 rows moved: not yet
        for i in range(15, 25):
            _serve(server, opt["id"], f"vacuum-{i}")
        mover.flush()
        mover._vacuum()
        assert sent == ["VACUUM (SKIP_LOCKED) exposure_outbox"]
        mover._vacuum()  # nothing moved since
        assert len(sent) == 1
    finally:
        event.remove(rt.store.engine, "before_cursor_execute", spy)
    deadline = time.monotonic() + 5
    while vacuums() == before and time.monotonic() < deadline:  # PostgreSQL ran it
        time.sleep(0.05)
    assert vacuums() > before
    assert _outbox_rows(rt) == 0


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_the_postgres_mover_spreads_a_round_over_chunks_with_pauses(server, org, monkeypatch):
    """A round of the mover on PostgreSQL moves chunks of `MOVE_CHUNK` rows, each followed
    by a pause proportional to its duration, and stops pausing once the round has lasted an
    interval, so that it keeps up; every row lands in the warehouse either way."""
    from levered_server.services import outbox

    rt = server.runtime
    rt.outbox.stop()  # this test runs the rounds itself
    opt = make_optimization(org, holdout_percentage=0)
    monkeypatch.setattr(outbox, "MOVE_CHUNK", 10)
    mover = outbox.OutboxMover(rt.store, rt.warehouses)
    moves, pauses = [], []
    move = mover._move
    monkeypatch.setattr(mover, "_move", lambda org_id, limit: moves.append(limit) or
                        move(org_id, limit))
    monkeypatch.setattr(mover._stop, "wait", lambda seconds: pauses.append(seconds))

    bodies = [_serve(server, opt["id"], f"paced-{i}") for i in range(25)]
    mover._move_paced()
    assert moves == [10, 10, 10]  # the last chunk held 5 rows: the round is over
    assert len(pauses) == 2 and all(p > 0 for p in pauses)
    assert _outbox_rows(rt) == 0
    for body in bodies:
        assert _stored(rt, org, body["exposure_id"]) == [body["variant_number"]]

    moves.clear()
    pauses.clear()
    mover.interval = 0  # a round past its interval: no more pauses
    for i in range(25, 50):
        _serve(server, opt["id"], f"paced-{i}")
    mover._move_paced()
    assert (moves, pauses, _outbox_rows(rt)) == ([10, 10, 10], [], 0)
