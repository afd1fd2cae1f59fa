"""A generation's event log: what Server-Sent Events clients read and resume from.

Events are rows, numbered 1, 2, 3 ... per generation (the SSE `id`). The number comes from an
atomic `UPDATE ... SET event_seq = event_seq + 1 RETURNING` on the generation row, so two writers
(a worker's heartbeat and a user's cancel) can never take the same number, and a client that
reconnects with `Last-Event-ID: n` gets exactly the events after n, from any API replica.
Kinds: `status` (the status changed), `progress` (progress, stage, eta), `output` (the files).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mutoscope.serve.tables import Generation, GenerationEvent

KINDS = ("status", "progress", "output")


def append(session: Session, generation_id: str, kind: str, data: dict[str, Any]) -> int:
    """Add an event in the caller's transaction; returns its id."""
    assert kind in KINDS, kind
    seq = session.execute(
        update(Generation)
        .where(Generation.id == generation_id)
        .values(event_seq=Generation.event_seq + 1)
        .returning(Generation.event_seq)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    session.add(GenerationEvent(generation_id=generation_id, seq=seq, kind=kind, data=data))
    return seq


def after(session: Session, generation_id: str, last_id: int, limit: int = 500) -> list[GenerationEvent]:
    return list(
        session.scalars(
            select(GenerationEvent)
            .where(GenerationEvent.generation_id == generation_id, GenerationEvent.seq > last_id)
            .order_by(GenerationEvent.seq)
            .limit(limit)
        )
    )


def format_sse(kind: str, data: dict[str, Any], event_id: int | None = None) -> str:
    """One SSE message; events without an id (queue position updates) do not move the resume point."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


def status_data(gen: Generation, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"status": gen.status, "stage": gen.stage, "progress": gen.progress}
    if gen.error_code:
        data["error"] = {
            "code": gen.error_code,
            "message": gen.error_message,
            "retryable": gen.error_retryable,
        }
    return {**data, **extra}
