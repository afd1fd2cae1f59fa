"""Submitting a generation: idempotency, moderation, capabilities, limits, credits and the queue.

The order matters. The Idempotency-Key is claimed first, in its own short transaction, so that a
retry that arrives while the first request is still being worked on sees it "in flight" (409)
instead of racing it. Moderation, the capability check and the check of the uploads and the video
that the controls name (`inputs.check`) run before any money moves. Then ONE transaction locks the
user, checks the concurrent-jobs limit, reserves the credits (402 when short), inserts the
generation and its job and the first event, and ties the key to the result: either all of that
happens or none of it. If the request fails, the key is released, so a client may retry with the
same key once it has, say, topped up its credits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from mutoscope.serve import capabilities, credits, events, hooks, inputs, registry
from mutoscope.serve.accounts import Principal
from mutoscope.serve.deps import ServeContext
from mutoscope.serve.ids import new_id
from mutoscope.serve.problems import ApiError
from mutoscope.serve.schemas import GenerationCreate
from mutoscope.serve.tables import Generation, GenerationStatus, IdempotencyKey, Job, utcnow

ACTIVE = (GenerationStatus.QUEUED, GenerationStatus.RUNNING)
KEY_TTL = dt.timedelta(hours=24)  # how long an Idempotency-Key replays its generation


@dataclass(frozen=True)
class Submitted:
    generation_id: str
    replayed: bool  # the same key and body were seen before: this is that generation


def request_hash(body: GenerationCreate) -> str:
    """Same request, same hash: defaults filled in, keys sorted (so {"seconds": 2} == {})."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit(ctx: ServeContext, user: Principal, body: GenerationCreate, key: str) -> Submitted:
    digest = request_hash(body)
    existing = _claim_key(ctx, user.id, key, digest)
    if existing is not None:
        return Submitted(existing, replayed=True)
    try:
        gen_id = _create(ctx, user, body, key)
    except BaseException:
        with ctx.db.write() as s:
            row = s.get(IdempotencyKey, (user.id, key))
            if row is not None and row.generation_id is None:
                s.delete(row)
        raise
    return Submitted(gen_id, replayed=False)


def _claim_key(ctx: ServeContext, user_id: str, key: str, digest: str) -> str | None:
    """Mark the key in flight; returns the generation of an earlier identical request, if any."""
    try:
        with ctx.db.write() as s:
            row = s.get(IdempotencyKey, (user_id, key), with_for_update=True)
            if row is None:
                s.add(IdempotencyKey(user_id=user_id, key=key, request_hash=digest))
                return None
            if row.request_hash != digest:
                raise ApiError(
                    422,
                    "idempotency.key.reused",
                    "this Idempotency-Key was used with a different request body",
                )
            if row.generation_id is not None:
                return row.generation_id
            if utcnow() - row.created_at < dt.timedelta(seconds=ctx.settings.idempotency_stale_s):
                raise _in_flight()
            row.created_at = utcnow()  # the first request died mid-way: take the key over
            return None
    except IntegrityError:  # PostgreSQL: a concurrent request inserted the same key first
        raise _in_flight() from None


def expire_keys(ctx: ServeContext) -> int:
    """Forget keys older than KEY_TTL: a retry means minutes or hours later, not weeks."""
    with ctx.db.write() as s:
        result = s.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - KEY_TTL))
        return result.rowcount


def _in_flight() -> ApiError:
    return ApiError(
        409,
        "idempotency.key.in_flight",
        "a request with this Idempotency-Key is still being processed; retry shortly",
        headers={"Retry-After": "1"},
    )


def _create(ctx: ServeContext, user: Principal, body: GenerationCreate, key: str) -> str:
    flags = None
    if ctx.moderator:  # every prompt the video is made from: the storyboard's shots too
        for prompt in (body.prompt, *(shot.prompt for shot in body.storyboard or ())):
            flags = flags or ctx.moderator.check(prompt, body.negative_prompt)
    if body.webhook_url:
        hooks.check_webhook_url(body.webhook_url, allow_private=ctx.settings.webhook_allow_private)
    with ctx.db.read() as s:
        model = registry.resolve(s, body.model)
        capabilities.validate(body, model.capabilities, model.id)
        inputs.check(s, ctx.storage, user.id, body)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    cost = credits.cost(body.seconds, body.resolution, body.fps)
    limit = user.max_concurrent_jobs or ctx.settings.max_concurrent_jobs

    with ctx.db.write() as s:
        credits.lock_user(s, user.id)
        active = s.scalar(
            select(func.count()).where(Generation.user_id == user.id, Generation.status.in_(ACTIVE))
        )
        if active >= limit:
            raise ApiError(
                429,
                "rate_limit.concurrent_jobs",
                f"{active} generations are queued or running; the limit is {limit}",
                headers={"Retry-After": "5"},
                limit=limit,
            )
        gen = Generation(
            id=new_id("gen"),
            user_id=user.id,
            model_id=model.id,
            prompt=body.prompt,
            params=capabilities.job_params(body, seed),
            cost=cost,
            moderation=flags,
            webhook_url=body.webhook_url,
        )
        s.add(gen)
        s.flush()
        credits.reserve(s, gen)
        job = Job(generation_id=gen.id, model_id=model.id)
        s.add(job)
        s.flush()
        events.append(s, gen.id, "status", events.status_data(gen))
        s.get(IdempotencyKey, (user.id, key)).generation_id = gen.id
        return gen.id
