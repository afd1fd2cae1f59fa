"""The JSON a client sees of a generation, and the signed links inside it.

`<video src>` and `EventSource` cannot send an Authorization header, so a generation's content
and events URLs carry a signature (HMAC of generation, variant and expiry, with a secret shared
by all API replicas through the database). The expiry is rounded up to the hour, so the URLs stay
the same from one poll to the next and a playing video is not reloaded.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Any

from sqlalchemy.orm import Session

from mutoscope.serve import queue
from mutoscope.serve.ids import sign, verify_signature
from mutoscope.serve.tables import Generation, KeyValue

LINK_SECRET_KEY = "link_secret"
_ROUND_S = 3600


def link_secret(s: Session) -> str:
    """The shared secret, created by the first server to start."""
    row = s.get(KeyValue, LINK_SECRET_KEY)
    if row is None:
        row = KeyValue(key=LINK_SECRET_KEY, value=secrets.token_hex(32))
        s.add(row)
        s.flush()
    return row.value


def signed_query(secret: str, gen_id: str, variant: str, ttl_s: int) -> str:
    exp = (int(time.time()) // _ROUND_S + 1) * _ROUND_S + ttl_s
    return f"exp={exp}&sig={sign(secret, f'{gen_id}:{variant}:{exp}')}"


def link_valid(secret: str, gen_id: str, variant: str, exp: int | None, sig: str | None) -> bool:
    if exp is None or sig is None or exp < time.time():
        return False
    return verify_signature(secret, f"{gen_id}:{variant}:{exp}", sig)


def utc(when: dt.datetime | None) -> dt.datetime | None:
    """Stored naive-UTC times as aware ones, so that JSON says so (`...Z`)."""
    return when.replace(tzinfo=dt.UTC) if when is not None else None


def generation_view(s: Session, gen: Generation, secret: str, ttl_s: int) -> dict[str, Any]:
    base = f"/v1/generations/{gen.id}"
    outputs = None
    if gen.outputs and gen.status == "succeeded":
        outputs = {
            variant: {
                "url": f"{base}/content?variant={variant}&{signed_query(secret, gen.id, variant, ttl_s)}",
                "content_type": gen.outputs[variant]["content_type"],
                "bytes": gen.outputs[variant]["bytes"],
            }
            for variant in ("video", "poster")
        }
        outputs["record"] = gen.outputs.get("record", {})
    position, eta_s = queue.queue_position(s, gen), gen.eta_s
    if position is not None:  # queued: the jobs ahead and this one, at the model's recent pace
        typical = queue.typical_runtime_s(s, gen.model_id)
        eta_s = round(position * typical, 1) if typical is not None else None
    error = None
    if gen.error_code:
        error = {
            "code": gen.error_code,
            "message": gen.error_message or "",
            "retryable": bool(gen.error_retryable),
        }
    return {
        "id": gen.id,
        "object": "generation",
        "status": gen.status,
        "model": gen.model_id,
        "prompt": gen.prompt,
        "params": gen.params,
        "queue_position": position,
        "progress": gen.progress,
        "stage": gen.stage,
        "eta_s": eta_s,
        "outputs": outputs,
        "error": error,
        "cost": gen.cost,
        "credits_reserved": gen.credits_reserved,
        "credits_charged": gen.credits_charged,
        "attempts": queue.attempts(s, gen.id),
        "cancel_requested": gen.cancel_requested,
        "moderation": gen.moderation,
        "created_at": utc(gen.created_at),
        "started_at": utc(gen.started_at),
        "finished_at": utc(gen.finished_at),
        "events_url": f"{base}/events?{signed_query(secret, gen.id, 'events', ttl_s)}",
    }
