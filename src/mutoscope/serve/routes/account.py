"""The caller's account: /v1/me, /v1/credits (+ ledger), /v1/api-keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from mutoscope.serve import accounts, credits, hooks
from mutoscope.serve.deps import Ctx, CurrentUser
from mutoscope.serve.problems import ApiError, not_found
from mutoscope.serve.schemas import ApiKeyCreate
from mutoscope.serve.tables import ApiKey, LedgerEntry, User, utcnow
from mutoscope.serve.views import utc

router = APIRouter(tags=["account"])


def _key(key: ApiKey) -> dict:
    return {
        "id": key.id,
        "object": "api_key",
        "name": key.name,
        "prefix": key.prefix,
        "created_at": utc(key.created_at),
        "last_used_at": utc(key.last_used_at),
        "revoked_at": utc(key.revoked_at),
    }


@router.get("/v1/me")
def me(user: CurrentUser, ctx: Ctx) -> dict:
    with ctx.db.read() as s:
        row = s.get(User, user.id)
        balance = credits.balance(s, user.id)
    return {
        "id": row.id,
        "object": "user",
        "email": row.email,
        "name": row.name,
        "is_admin": row.is_admin,
        "created_at": utc(row.created_at),
        "credits": {"balance": balance.available, "reserved": balance.reserved},
        "limits": {
            "requests_per_minute": row.rate_per_minute or ctx.settings.rate_per_minute,
            "concurrent_jobs": row.max_concurrent_jobs or ctx.settings.max_concurrent_jobs,
        },
    }


@router.get("/v1/credits")
def get_credits(user: CurrentUser, ctx: Ctx) -> dict:
    """The balance (derived from the ledger), credits held by queued/running jobs, and the prices."""
    with ctx.db.read() as s:
        balance = credits.balance(s, user.id)
    return {
        "object": "credits",
        "balance": balance.available,
        "reserved": balance.reserved,
        "costs": credits.cost_table(),
    }


@router.get("/v1/credits/ledger")
def ledger(
    user: CurrentUser,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[int | None, Query(ge=1, description="next_cursor of the previous page")] = None,
) -> dict:
    """The caller's ledger rows, newest first."""
    query = select(LedgerEntry).where(LedgerEntry.user_id == user.id)
    if cursor is not None:
        query = query.where(LedgerEntry.id < cursor)
    with ctx.db.read() as s:
        rows = list(s.scalars(query.order_by(LedgerEntry.id.desc()).limit(limit + 1)))
    data = [
        {"id": r.id, "kind": r.kind, "delta": r.delta, "generation_id": r.generation_id, "note": r.note,
         "created_at": utc(r.created_at)}
        for r in rows[:limit]
    ]  # fmt: skip
    return {"data": data, "next_cursor": rows[limit - 1].id if len(rows) > limit else None}


@router.get("/v1/webhook-secret")
def get_webhook_secret(user: CurrentUser, ctx: Ctx) -> dict:
    """The secret that signs your webhooks (Standard Webhooks: verify `webhook-signature` with it)."""
    with ctx.db.write() as s:
        return {"object": "webhook_secret", "secret": hooks.webhook_secret(s, user.id)}


@router.post("/v1/webhook-secret/rotate")
def rotate_webhook_secret(user: CurrentUser, ctx: Ctx) -> dict:
    with ctx.db.write() as s:
        return {"object": "webhook_secret", "secret": hooks.webhook_secret(s, user.id, rotate=True)}


@router.get("/v1/api-keys")
def list_keys(user: CurrentUser, ctx: Ctx) -> dict:
    with ctx.db.read() as s:
        keys = s.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id.desc()))
        return {"data": [_key(k) for k in keys]}


@router.post("/v1/api-keys", status_code=201)
def create_key(body: ApiKeyCreate, user: CurrentUser, ctx: Ctx) -> dict:
    """A new key. `key` is in this answer only: it is stored hashed and cannot be shown again."""
    with ctx.db.write() as s:
        row, token = accounts.create_api_key(s, user.id, body.name)
        s.flush()
        return {**_key(row), "key": token}


@router.delete("/v1/api-keys/{key_id}", status_code=204)
def revoke_key(key_id: str, user: CurrentUser, ctx: Ctx) -> Response:
    with ctx.db.write() as s:
        row = s.get(ApiKey, key_id)
        if row is None or row.user_id != user.id:
            raise not_found("api_key", key_id)
        if row.revoked_at is None:
            active = s.scalars(
                select(ApiKey.id).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
            ).all()
            if len(active) == 1:
                raise ApiError(409, "api_key.last", "this is your only active key; create another one first")
            row.revoked_at = utcnow()
    return Response(status_code=204)
