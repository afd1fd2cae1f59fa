"""FastAPI dependencies as `Annotated` aliases: the server context, the caller, the worker token.

Routes declare what they need in their signature (`user: CurrentUser`, `ctx: Ctx`) and nothing
else: authentication, per-user rate limits and the key's last-used stamp all happen here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from mutoscope.serve import accounts
from mutoscope.serve.accounts import Principal
from mutoscope.serve.db import Database
from mutoscope.serve.hooks import Moderator
from mutoscope.serve.limits import RateLimiter
from mutoscope.serve.problems import ApiError
from mutoscope.serve.settings import ServeSettings
from mutoscope.serve.storage import Storage
from mutoscope.serve.tables import ApiKey, utcnow

LAST_USED_EVERY = dt.timedelta(minutes=1)  # stamp api_keys.last_used_at at most this often


@dataclass(frozen=True)
class ServeContext:
    settings: ServeSettings
    db: Database
    storage: Storage
    limiter: RateLimiter
    moderator: Moderator | None
    link_secret: str


def get_ctx(request: Request) -> ServeContext:
    return request.app.state.ctx


Ctx = Annotated[ServeContext, Depends(get_ctx)]


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "auth.invalid",
            "use `Authorization: Bearer <API key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def optional_user(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> Principal | None:
    """The caller if an API key was sent (and valid), None if none was sent."""
    token = _bearer(authorization)
    if token is None:
        return None
    with ctx.db.read() as s:
        found = accounts.authenticate(s, token)
        if found is None:
            raise ApiError(
                401, "auth.invalid", "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
            )
        user, key = found
        who, key_id, last_used = accounts.principal(user), key.id, key.last_used_at
    limit = who.rate_per_minute or ctx.settings.rate_per_minute
    retry = ctx.limiter.hit(f"user:{who.id}", limit)
    if retry is not None:
        raise ApiError(
            429,
            "rate_limit.requests",
            f"more than {limit} requests per minute; retry in {retry} s",
            headers={"Retry-After": str(retry)},
            retry_after=retry,
        )
    if last_used is None or utcnow() - last_used > LAST_USED_EVERY:
        with ctx.db.write() as s:
            s.get(ApiKey, key_id).last_used_at = utcnow()
    return who


def current_user(user: Annotated[Principal | None, Depends(optional_user)]) -> Principal:
    if user is None:
        raise ApiError(
            401,
            "auth.missing",
            "send `Authorization: Bearer <API key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[Principal, Depends(current_user)]
OptionalUser = Annotated[Principal | None, Depends(optional_user)]


def public_rate(request: Request, ctx: Ctx) -> None:
    """Unauthenticated endpoints: a per-address limit against sign-up floods."""
    address = request.client.host if request.client else "unknown"
    retry = ctx.limiter.hit(f"ip:{address}", ctx.settings.public_rate_per_minute)
    if retry is not None:
        raise ApiError(
            429,
            "rate_limit.requests",
            f"too many requests; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )


PublicRate = Depends(public_rate)


def worker_auth(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> None:
    token = _bearer(authorization)
    with ctx.db.read() as s:
        valid = token is not None and accounts.worker_token_valid(s, token)
    if not valid:
        raise ApiError(401, "worker.auth.invalid", "send `Authorization: Bearer <worker token>`")


WorkerAuth = Depends(worker_auth)
