"""The queue's guarantees on both real databases: leases, fencing, reaping, retries, refunds, schema."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time

import pytest
from harness import postgres_database

from mutoscope.serve import accounts, credits, queue, registry
from mutoscope.serve.capabilities import Capabilities
from mutoscope.serve.db import Database
from mutoscope.serve.deps import ServeContext
from mutoscope.serve.limits import RateLimiter
from mutoscope.serve.schemas import GenerationCreate
from mutoscope.serve.settings import ServeSettings
from mutoscope.serve.storage import Storage
from mutoscope.serve.submit import submit
from mutoscope.serve.tables import Base, Generation, LedgerEntry

MODEL = "unit-model"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ctx(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"queue-{request.param}")
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_database()) if request.param == "postgres" else None
        settings = ServeSettings(data_dir=tmp, database_url=url, max_concurrent_jobs=100)
        db = Database(settings.url)
        db.migrate()
        stack.callback(db.dispose)
        with db.write() as s:
            caps = Capabilities(width=32, height=32, fps=8.0, frames=8, max_seconds=1.0)
            registry.register(s, MODEL, {"capabilities": caps.to_dict()})
        yield ServeContext(settings, db, Storage(settings), RateLimiter(), None, "secret")


def _user(ctx, amount: int):
    with ctx.db.write() as s:
        user = accounts.create_user(s, credits_=amount)
        return accounts.principal(user)


def _submit(ctx, user, n: int = 1) -> list[str]:
    body = GenerationCreate(prompt="a red ball", seconds=1)
    return [submit(ctx, user, body, secrets.token_hex(8)).generation_id for _ in range(n)]


def _gen(ctx, gen_id) -> Generation:
    with ctx.db.read() as s:
        return s.get(Generation, gen_id)


def _ledger(ctx, user_id) -> list[tuple[str, int]]:
    with ctx.db.read() as s:
        rows = s.query(LedgerEntry).filter_by(user_id=user_id).order_by(LedgerEntry.id)
        return [(r.kind, r.delta) for r in rows]


def _drain(ctx) -> None:
    """Cancel whatever an earlier test left queued, so each test claims its own jobs."""
    while (lease := queue.claim(ctx.db, "drain", [MODEL], 30)) is not None:
        queue.acknowledge_cancel(ctx.db, lease.job_id, lease.token)


def test_expired_lease_is_requeued_and_the_old_worker_is_fenced_off(ctx):
    _drain(ctx)
    user = _user(ctx, 5)
    (gen_id,) = _submit(ctx, user)
    first = queue.claim(ctx.db, "worker-a", [MODEL], lease_s=0.05)
    assert first.generation_id == gen_id and first.attempt == 1
    assert queue.claim(ctx.db, "worker-b", [MODEL], lease_s=30) is None  # nothing else queued
    time.sleep(0.1)
    with pytest.raises(queue.LeaseLost):  # expired: even before the reaper runs, it is not trusted
        queue.heartbeat(ctx.db, first.job_id, first.token, progress=0.5, stage="denoise", eta_s=1, lease_s=30)
    assert queue.reap(ctx.db, max_attempts=3) == []  # requeued, not finished
    assert _gen(ctx, gen_id).status == "queued"

    second = queue.claim(ctx.db, "worker-b", [MODEL], lease_s=30)
    assert second.generation_id == gen_id and second.attempt == 2 and second.token != first.token
    with pytest.raises(queue.LeaseLost):
        queue.complete(ctx.db, first.job_id, first.token, {"video": {}})
    assert (
        queue.heartbeat(
            ctx.db, second.job_id, second.token, progress=0.5, stage="denoise", eta_s=1, lease_s=30
        )
        is False
    )
    outputs = {"video": {"path": "v", "bytes": 1, "content_type": "video/mp4"}, "poster": {}, "record": {}}
    assert queue.complete(ctx.db, second.job_id, second.token, outputs).status == "succeeded"
    with pytest.raises(queue.LeaseLost):  # and only once
        queue.complete(ctx.db, second.job_id, second.token, outputs)
    assert _ledger(ctx, user.id) == [("grant", 5), ("reserve", -1), ("release", 1), ("charge", -1)]


def test_after_max_attempts_the_job_fails_and_is_refunded(ctx):
    _drain(ctx)
    user = _user(ctx, 3)
    (gen_id,) = _submit(ctx, user)
    for attempt in (1, 2):
        lease = queue.claim(ctx.db, "w", [MODEL], lease_s=0.01)
        assert lease.attempt == attempt
        time.sleep(0.05)
        queue.reap(ctx.db, max_attempts=2)
    gen = _gen(ctx, gen_id)
    assert gen.status == "failed" and gen.error_code == "worker.lost" and gen.error_retryable is True
    assert gen.credits_charged == 0
    with ctx.db.read() as s:
        assert credits.balance(s, user.id) == credits.Balance(available=3, reserved=0)


def test_worker_failures_retry_if_retryable_then_refund(ctx):
    _drain(ctx)
    user = _user(ctx, 3)
    (gen_id,) = _submit(ctx, user)
    lease = queue.claim(ctx.db, "w", [MODEL], lease_s=30)
    assert (
        queue.fail(
            ctx.db, lease.job_id, lease.token, code="cuda.oom", message="oom", retryable=True, max_attempts=3
        )
        is None
    )
    assert _gen(ctx, gen_id).status == "queued"
    lease = queue.claim(ctx.db, "w", [MODEL], lease_s=30)
    done = queue.fail(
        ctx.db, lease.job_id, lease.token, code="engine.error", message="bad", retryable=False, max_attempts=3
    )
    assert done.status == "failed" and _gen(ctx, gen_id).error_code == "engine.error"
    assert _ledger(ctx, user.id)[-1] == ("release", 1)


def test_heartbeat_reply_carries_the_cancel(ctx):
    _drain(ctx)
    user = _user(ctx, 3)
    (gen_id,) = _submit(ctx, user)
    lease = queue.claim(ctx.db, "w", [MODEL], lease_s=30)
    beat = dict(progress=0.2, stage="denoise", eta_s=1.0, lease_s=30)
    assert queue.heartbeat(ctx.db, lease.job_id, lease.token, **beat) is False
    with ctx.db.write() as s:
        assert queue.request_cancel(s, gen_id) is None  # running: ends at the worker's next step
    assert queue.heartbeat(ctx.db, lease.job_id, lease.token, **beat) is True
    assert queue.acknowledge_cancel(ctx.db, lease.job_id, lease.token).status == "canceled"
    with ctx.db.read() as s:
        assert credits.balance(s, user.id).available == 3


def test_concurrent_claimers_never_share_a_job(ctx):
    _drain(ctx)
    user = _user(ctx, 100)
    ids = set(_submit(ctx, user, 24))
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(name):
        while (lease := queue.claim(ctx.db, name, [MODEL], lease_s=30)) is not None:
            with lock:
                claimed.append(lease.generation_id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


def test_migrations_match_the_tables(ctx):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with ctx.db.write_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_idempotency_keys_expire_after_a_day(ctx):
    import datetime as dt

    from mutoscope.serve.submit import expire_keys
    from mutoscope.serve.tables import IdempotencyKey

    user = _user(ctx, 3)
    body = GenerationCreate(prompt="a red ball", seconds=1)
    first = submit(ctx, user, body, "key-1")
    assert submit(ctx, user, body, "key-1") == first.__class__(first.generation_id, replayed=True)
    with ctx.db.write() as s:
        s.get(IdempotencyKey, (user.id, "key-1")).created_at -= dt.timedelta(hours=25)
    assert expire_keys(ctx) >= 1
    again = submit(ctx, user, body, "key-1")
    assert not again.replayed and again.generation_id != first.generation_id
    _drain(ctx)
