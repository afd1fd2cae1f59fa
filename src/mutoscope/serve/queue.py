"""The queue is the `jobs` table: claim with a lease, heartbeat, finish; a reaper for lost workers.

A worker claims the oldest queued job for a model it has loaded (PostgreSQL: `FOR UPDATE SKIP
LOCKED`, so concurrent claimers never wait on each other; SQLite: the whole claim runs under
BEGIN IMMEDIATE). The claim sets a fresh random lease token and an expiry. Every later call from
the worker (heartbeat, complete, fail, canceled) must present that token while the lease is still
its own; once the reaper has requeued an expired job, the old worker's token is stale and it
gets `LeaseLost`, so a job that ran twice is completed, and charged, exactly once.

Locks are always taken in the order job -> generation -> user, everywhere, so that PostgreSQL
transactions touching the same rows cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mutoscope.serve import credits, events, registry
from mutoscope.serve.db import Database
from mutoscope.serve.tables import Generation, GenerationStatus, Job, JobStatus, utcnow

Status = GenerationStatus


class LeaseLost(Exception):
    """The job is no longer this worker's: its lease expired and was reaped, or the job ended."""


@dataclass(frozen=True)
class Lease:
    job_id: int
    generation_id: str
    token: str
    attempt: int
    model_id: str
    params: dict[str, Any]
    lease_s: float


@dataclass(frozen=True)
class Finished:
    """A generation that reached a terminal status in this call (for webhooks and logs)."""

    generation_id: str
    user_id: str
    status: str


def claim(db: Database, worker_id: str, model_ids: list[str], lease_s: float) -> Lease | None:
    with db.write() as s:
        registry.seen(s, model_ids)
        job = s.scalars(
            select(Job)
            .where(Job.status == JobStatus.QUEUED, Job.model_id.in_(model_ids))
            .order_by(Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if job is None:
            return None
        gen = s.get(Generation, job.generation_id, with_for_update=True)
        now = utcnow()
        job.status, job.attempts, job.worker_id = JobStatus.RUNNING, job.attempts + 1, worker_id
        job.lease_token = secrets.token_hex(16)
        job.lease_expires_at, job.updated_at = now + dt.timedelta(seconds=lease_s), now
        gen.status, gen.stage, gen.progress, gen.eta_s = Status.RUNNING, "starting", 0.0, None
        gen.started_at = gen.started_at or now
        events.append(s, gen.id, "status", events.status_data(gen, attempt=job.attempts))
        return Lease(job.id, gen.id, job.lease_token, job.attempts, job.model_id, dict(gen.params), lease_s)


def current_lease(db: Database, job_id: int, token: str) -> Lease:
    """The lease behind a token, if it is still current (a cheap check before accepting uploads)."""
    with db.read() as s:
        job = s.get(Job, job_id)
        if job is None or job.status != JobStatus.RUNNING or job.lease_token != token:
            raise LeaseLost(f"job {job_id} is not leased with this token")
        gen = s.get(Generation, job.generation_id)
        return Lease(job.id, gen.id, token, job.attempts, job.model_id, dict(gen.params), 0.0)


def _leased(s: Session, job_id: int, token: str) -> tuple[Job, Generation]:
    job = s.get(Job, job_id, with_for_update=True)
    if job is None or job.status != JobStatus.RUNNING or job.lease_token != token:
        raise LeaseLost(f"job {job_id} is not leased with this token")
    if job.lease_expires_at < utcnow():
        # Expired but not yet reaped: the reaper may hand it to another worker at any moment,
        # so the result of this attempt cannot be trusted to be the only one.
        raise LeaseLost(f"the lease of job {job_id} expired")
    return job, s.get(Generation, job.generation_id, with_for_update=True)


def heartbeat(
    db: Database,
    job_id: int,
    token: str,
    *,
    progress: float,
    stage: str | None,
    eta_s: float | None,
    lease_s: float,
) -> bool:
    """Renew the lease and record progress; returns True when the user asked to cancel."""
    with db.write() as s:
        job, gen = _leased(s, job_id, token)
        now = utcnow()
        job.lease_expires_at, job.updated_at = now + dt.timedelta(seconds=lease_s), now
        progress = max(0.0, min(1.0, progress))
        if (progress, stage, eta_s) != (gen.progress, gen.stage, gen.eta_s):
            gen.progress, gen.stage, gen.eta_s = progress, stage, eta_s
            events.append(s, gen.id, "progress", {"progress": progress, "stage": stage, "eta_s": eta_s})
        return gen.cancel_requested


def _finish(s: Session, job: Job, gen: Generation, status: Status, **error: Any) -> Finished:
    now = utcnow()
    job.status, job.lease_token, job.lease_expires_at, job.updated_at = JobStatus.DONE, None, None, now
    gen.status, gen.finished_at, gen.eta_s = status, now, None
    if error:
        gen.error_code, gen.error_message, gen.error_retryable = (
            error["code"],
            error["message"],
            error["retryable"],
        )
    credits.settle(s, gen, charge=status == Status.SUCCEEDED)
    events.append(s, gen.id, "status", events.status_data(gen))
    return Finished(gen.id, gen.user_id, status)


def complete(db: Database, job_id: int, token: str, outputs: dict[str, Any]) -> Finished:
    """Record the outputs and charge; a generation deleted meanwhile ends canceled (and uncharged)."""
    with db.write() as s:
        job, gen = _leased(s, job_id, token)
        if gen.deleted_at is not None:
            return _finish(s, job, gen, Status.CANCELED)
        gen.outputs, gen.progress, gen.stage = outputs, 1.0, "done"
        events.append(s, gen.id, "output", {"outputs": _public(outputs)})
        return _finish(s, job, gen, Status.SUCCEEDED)


def fail(
    db: Database, job_id: int, token: str, *, code: str, message: str, retryable: bool, max_attempts: int
):
    """A worker-reported failure: retried if retryable and attempts remain, else failed and refunded."""
    with db.write() as s:
        job, gen = _leased(s, job_id, token)
        if retryable and job.attempts < max_attempts and not gen.cancel_requested:
            _requeue(s, job, gen, reason=code)
            return None
        return _finish(s, job, gen, Status.FAILED, code=code, message=message, retryable=retryable)


def acknowledge_cancel(db: Database, job_id: int, token: str) -> Finished:
    with db.write() as s:
        job, gen = _leased(s, job_id, token)
        return _finish(s, job, gen, Status.CANCELED)


def request_cancel(s: Session, gen_id: str) -> Finished | None:
    """The user's cancel, in the caller's transaction: a queued job ends now, a running one at its
    worker's next heartbeat. Idempotent; a finished generation is left as it is."""
    job = s.scalars(select(Job).where(Job.generation_id == gen_id).with_for_update()).first()
    gen = s.get(Generation, gen_id, with_for_update=True)
    if Status(gen.status).terminal or gen.cancel_requested:
        return None
    gen.cancel_requested = True
    if gen.status == Status.QUEUED:
        return _finish(s, job, gen, Status.CANCELED)
    events.append(s, gen.id, "status", events.status_data(gen, cancel_requested=True))
    return None


def _requeue(s: Session, job: Job, gen: Generation, reason: str) -> None:
    now = utcnow()
    job.status, job.lease_token, job.worker_id, job.lease_expires_at = JobStatus.QUEUED, None, None, None
    job.updated_at = now
    gen.status, gen.stage, gen.progress, gen.eta_s = Status.QUEUED, None, 0.0, None
    events.append(s, gen.id, "status", events.status_data(gen, requeued=reason, attempts=job.attempts))


def reap(db: Database, max_attempts: int) -> list[Finished]:
    """Requeue jobs whose lease expired (their worker died or hung); after max_attempts claims, fail
    and refund them. Safe to run from every API replica at once (SKIP LOCKED)."""
    finished: list[Finished] = []
    with db.write() as s:
        expired = s.scalars(
            select(Job)
            .where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < utcnow())
            .order_by(Job.id)
            .with_for_update(skip_locked=True)
        ).all()
        for job in expired:
            gen = s.get(Generation, job.generation_id, with_for_update=True)
            if gen.cancel_requested or gen.deleted_at is not None:
                finished.append(_finish(s, job, gen, Status.CANCELED))
            elif job.attempts < max_attempts:
                _requeue(s, job, gen, reason="lease_expired")
            else:
                message = f"the worker stopped answering {job.attempts} times; the credits were refunded"
                finished.append(
                    _finish(s, job, gen, Status.FAILED, code="worker.lost", message=message, retryable=True)
                )
    return finished


def queue_position(s: Session, gen: Generation) -> int | None:
    """1 for the next job to be claimed (for its model); None unless queued."""
    if gen.status != Status.QUEUED:
        return None
    job = s.scalars(select(Job).where(Job.generation_id == gen.id)).first()
    ahead = s.scalar(
        select(func.count()).where(
            Job.status == JobStatus.QUEUED, Job.model_id == job.model_id, Job.id < job.id
        )
    )
    return int(ahead) + 1


def typical_runtime_s(s: Session, model_id: str, last: int = 20) -> float | None:
    """Mean claim-to-finish time of the model's latest successes (for a queued job's eta)."""
    rows = s.execute(
        select(Generation.started_at, Generation.finished_at)
        .where(Generation.model_id == model_id, Generation.status == Status.SUCCEEDED)
        .order_by(Generation.id.desc())
        .limit(last)
    ).all()
    spans = [(end - start).total_seconds() for start, end in rows if start and end]
    return sum(spans) / len(spans) if spans else None


def attempts(s: Session, gen_id: str) -> int:
    return int(s.scalar(select(Job.attempts).where(Job.generation_id == gen_id)) or 0)


def _public(outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs without server paths (events carry no links; clients GET the generation for those)."""
    files = {k: {kk: vv for kk, vv in outputs[k].items() if kk != "path"} for k in ("video", "poster")}
    return {**outputs, **files}
