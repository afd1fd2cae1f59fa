"""/v1/generations: create (with an Idempotency-Key), list, get, cancel, delete."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from mutoscope.serve import hooks, queue
from mutoscope.serve.deps import Ctx, CurrentUser
from mutoscope.serve.ids import is_id
from mutoscope.serve.problems import ApiError, not_found
from mutoscope.serve.schemas import GenerationCreate, GenerationOut, GenerationPage
from mutoscope.serve.submit import submit
from mutoscope.serve.tables import Generation, GenerationStatus, utcnow
from mutoscope.serve.views import generation_view

router = APIRouter(prefix="/v1/generations", tags=["generations"])

StatusFilter = Annotated[GenerationStatus | None, Query(description="only generations in this status")]


def owned(s: Session, gen_id: str, user_id: str, *, lock: bool = False) -> Generation:
    """The caller's generation; anyone else's, or a deleted one, is 404 like a missing one."""
    gen = s.get(Generation, gen_id, with_for_update=lock) if is_id(gen_id, "gen") else None
    if gen is None or gen.user_id != user_id or gen.deleted_at is not None:
        raise not_found("generation", gen_id)
    return gen


@router.post("", status_code=201, response_model=GenerationOut)
def create_generation(
    body: GenerationCreate,
    user: CurrentUser,
    ctx: Ctx,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
):
    """Queue a generation. Retrying with the same Idempotency-Key and body returns the same one."""
    if not idempotency_key or not idempotency_key.strip():
        raise ApiError(
            400, "idempotency.key.missing", "send an Idempotency-Key header (a UUID is a good key)"
        )
    result = submit(ctx, user, body, idempotency_key.strip())
    if result.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/generations/{result.generation_id}"
    with ctx.db.read() as s:
        return generation_view(
            s, s.get(Generation, result.generation_id), ctx.link_secret, ctx.settings.link_ttl_s
        )


def _cursor(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        gen_id = base64.urlsafe_b64decode(value.encode() + b"==").decode()
    except (binascii.Error, UnicodeDecodeError):
        gen_id = ""
    if not is_id(gen_id, "gen"):
        raise ApiError(422, "request.cursor.invalid", "the cursor is not one this API gave out")
    return gen_id


@router.get("", response_model=GenerationPage)
def list_generations(
    user: CurrentUser,
    ctx: Ctx,
    status: StatusFilter = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
):
    """The caller's generations, newest first; follow `next_cursor` for older ones."""
    after = _cursor(cursor)
    query = select(Generation).where(Generation.user_id == user.id, Generation.deleted_at.is_(None))
    if status is not None:
        query = query.where(Generation.status == status)
    if after is not None:
        query = query.where(Generation.id < after)
    with ctx.db.read() as s:
        rows = list(s.scalars(query.order_by(Generation.id.desc()).limit(limit + 1)))
        page = [generation_view(s, g, ctx.link_secret, ctx.settings.link_ttl_s) for g in rows[:limit]]
    more = len(rows) > limit
    next_cursor = base64.urlsafe_b64encode(rows[limit - 1].id.encode()).decode().rstrip("=") if more else None
    return {"data": page, "next_cursor": next_cursor}


@router.get("/{gen_id}", response_model=GenerationOut)
def get_generation(gen_id: str, user: CurrentUser, ctx: Ctx):
    with ctx.db.read() as s:
        return generation_view(s, owned(s, gen_id, user.id), ctx.link_secret, ctx.settings.link_ttl_s)


@router.post("/{gen_id}/cancel", response_model=GenerationOut)
def cancel_generation(gen_id: str, user: CurrentUser, ctx: Ctx):
    """Cancel: a queued generation ends now, a running one between two denoising steps. Idempotent."""
    with ctx.db.write() as s:
        gen = owned(s, gen_id, user.id)
        if gen.status in (GenerationStatus.SUCCEEDED, GenerationStatus.FAILED):
            raise ApiError(409, "generation.finished", f"generation {gen_id} has already {gen.status}")
        finished = queue.request_cancel(s, gen_id)
    if finished is not None:
        hooks.notify_finished(ctx.db, gen_id)
    with ctx.db.read() as s:
        return generation_view(s, owned(s, gen_id, user.id), ctx.link_secret, ctx.settings.link_ttl_s)


@router.delete("/{gen_id}", status_code=204)
def delete_generation(gen_id: str, user: CurrentUser, ctx: Ctx) -> Response:
    """Delete a generation and its files (a running one is canceled first); the ledger keeps its rows."""
    with ctx.db.write() as s:
        owned(s, gen_id, user.id)
        finished = queue.request_cancel(s, gen_id)
        gen = s.get(Generation, gen_id)
        gen.deleted_at = utcnow()
    ctx.storage.delete_outputs(user.id, gen_id)
    if finished is not None:
        hooks.notify_finished(ctx.db, gen_id)
    return Response(status_code=204)
