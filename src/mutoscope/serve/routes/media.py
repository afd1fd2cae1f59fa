"""A generation's live events (Server-Sent Events) and its files (with HTTP Range requests).

Both accept either the caller's API key or the signed link found in the generation
(`events_url`, `outputs.video.url`): browsers' EventSource and <video> cannot send headers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mutoscope.serve import events, queue
from mutoscope.serve.deps import Ctx, OptionalUser
from mutoscope.serve.ids import is_id
from mutoscope.serve.problems import ApiError, not_found
from mutoscope.serve.tables import Generation, GenerationStatus
from mutoscope.serve.views import link_valid

router = APIRouter(prefix="/v1/generations", tags=["generations"])

Exp = Annotated[int | None, Query(description="signed link: expiry (unix seconds)")]
Sig = Annotated[str | None, Query(description="signed link: signature")]


def _authorised(ctx, user, gen_id: str, variant: str, exp: int | None, sig: str | None) -> Generation:
    with ctx.db.read() as s:
        gen = s.get(Generation, gen_id) if is_id(gen_id, "gen") else None
    if gen is None or gen.deleted_at is not None:
        raise not_found("generation", gen_id)
    if user is not None:
        if gen.user_id != user.id:
            raise not_found("generation", gen_id)
    elif not link_valid(ctx.link_secret, gen_id, variant, exp, sig):
        raise ApiError(401, "auth.missing", "send an API key, or use the signed link from the generation")
    return gen


@router.get("/{gen_id}/events", response_class=StreamingResponse)
async def generation_events(
    gen_id: str,
    request: Request,
    ctx: Ctx,
    user: OptionalUser,
    exp: Exp = None,
    sig: Sig = None,
    last_event_id: Annotated[str | None, Header()] = None,
):
    """Server-Sent Events: `status`, `progress`, `output`. Reconnect with Last-Event-ID to resume;
    the stream ends after the final status."""
    await run_in_threadpool(_authorised, ctx, user, gen_id, "events", exp, sig)
    try:
        last = int(last_event_id or 0)
    except ValueError:
        raise ApiError(400, "request.last_event_id.invalid", "Last-Event-ID must be an event id") from None

    def poll(after: int):
        with ctx.db.read() as s:
            new = [(e.seq, e.kind, e.data) for e in events.after(s, gen_id, after)]
            gen = s.get(Generation, gen_id)
            position = queue.queue_position(s, gen)
            return new, GenerationStatus(gen.status), gen.event_seq, position

    async def stream():
        nonlocal last
        yield "retry: 1000\n\n"
        position, quiet_since = None, time.monotonic()
        while not await request.is_disconnected():
            new, status, newest, now_position = await run_in_threadpool(poll, last)
            for seq, kind, data in new:
                yield events.format_sse(kind, data, seq)
                last = seq
            if status.terminal and last >= newest:
                return
            if now_position is not None and now_position != position and position is not None:
                yield events.format_sse("status", {"status": "queued", "queue_position": now_position})
            position = now_position
            if new:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > ctx.settings.sse_keepalive_s:
                yield ": keep-alive\n\n"  # a comment line: keeps proxies from closing the stream
                quiet_since = time.monotonic()
            await asyncio.sleep(ctx.settings.sse_poll_s)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _check_range(header: str, size: int) -> None:
    """Bad and unsatisfiable Range headers as problems (FileResponse serves the good ones)."""
    unit, _, spec = header.partition("=")
    starts = []
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        if unit.strip() != "bytes" or not dash or not (first or last) or not (first + last).isdigit():
            raise ApiError(400, "request.range.invalid", f"cannot parse Range: {header!r}")
        if first and last and int(last) < int(first):
            raise ApiError(400, "request.range.invalid", f"cannot parse Range: {header!r}")
        starts.append(int(first) if first else (size - int(last) if int(last) else size))
    if all(start >= size for start in starts):
        raise ApiError(
            416,
            "request.range.unsatisfiable",
            f"the file has {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )


@router.get("/{gen_id}/content", response_class=FileResponse)
def generation_content(
    gen_id: str,
    ctx: Ctx,
    user: OptionalUser,
    variant: Literal["video", "poster"] = "video",
    exp: Exp = None,
    sig: Sig = None,
    range_header: Annotated[str | None, Header(alias="range")] = None,
):
    """The MP4 (`variant=video`) or the poster PNG; Range requests answer 206 with Content-Range."""
    gen = _authorised(ctx, user, gen_id, variant, exp, sig)
    if gen.status != GenerationStatus.SUCCEEDED or not gen.outputs:
        raise ApiError(409, "generation.not_ready", f"generation {gen_id} is {gen.status}; it has no content")
    entry = gen.outputs[variant]
    path = ctx.storage.output_path(entry["path"])
    if not path.is_file():
        raise ApiError(410, "generation.content.gone", "the file is no longer stored")
    if range_header:
        _check_range(range_header, path.stat().st_size)
    name = f"{gen_id}.{'mp4' if variant == 'video' else 'png'}"
    return FileResponse(
        path,
        media_type=entry["content_type"],
        filename=name,
        content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=86400"},
    )
