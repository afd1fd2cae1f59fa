"""The three places where serving calls out to policy and post-processing modules:

- `Moderator.check(prompt, negative)`: the operator's policy (`serve/moderation.py`) before any
  credit is reserved; a blocked prompt answers 422 `moderation.input.text` with its category.
- `watermark_video(video, poster, record)`: the invisible watermark (`post/watermark.py`) in every
  frame of a finished video and in its poster, by the worker, before the files leave it.
- `notify_finished(db, id)`: webhooks (`serve/webhooks.py`) when a generation reaches a final status,
  signed with its owner's secret (GET /v1/webhook-secret), if it was created with a `webhook_url`.
"""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mutoscope.serve.problems import ApiError

log = logging.getLogger("mutoscope.serve")


class Moderator:
    """A loaded moderation policy (a shipped profile name or a YAML path)."""

    def __init__(self, policy: str):
        from mutoscope.serve.moderation import load_policy

        self.policy = load_policy(policy)

    def check(self, prompt: str, negative_prompt: str = "") -> dict[str, Any] | None:
        """Raise 422 on a blocked prompt; return the flags to record (None when clean)."""
        verdict = self.policy.check(prompt)
        if verdict.blocked:
            raise ApiError(
                422,
                "moderation.input.text",
                f"the prompt was blocked by the moderation policy (category: {verdict.category})",
                title="Blocked by the moderation policy",
                category=verdict.category,
                policy=self.policy.name,
            )
        # The negative prompt steers away from what it names, so it is not moderated.
        if verdict.action == "flag":
            return {"policy": self.policy.name, **verdict.to_dict()}
        return None


def watermark_video(video: Path, poster: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Mark every frame of `video` and the poster with the invisible watermark; returns the record.

    generate() marks its frames before its one encode and says so in the record, which is left
    alone here; an engine that does not (a plug-in `--engine`) gets its clip decoded, marked and
    re-encoded (at crf 18 the mark survives; `mutoscope verify` reads it back).
    """
    if "watermark" in record:
        return record
    from PIL import Image

    from mutoscope.post import watermark
    from mutoscope.post.mp4 import read_frames, read_record, write_mp4, write_poster

    marked = watermark.embed(read_frames(video))
    fps = record.get("video", {}).get("rate") or record.get("fps", 8.0)
    record = {k: v for k, v in record.items() if k != "video"}  # write_mp4 describes the new file
    record["watermark"] = {"method": watermark.METHOD, "payload": watermark.PAYLOAD.decode()}
    write_mp4(video, marked, Fraction(fps) if isinstance(fps, str) else fps, record)
    with Image.open(poster) as img:
        still = np.asarray(img.convert("RGB"))[None]
    write_poster(poster, watermark.embed(still)[0])
    return read_record(video) or record


def check_webhook_url(url: str, *, allow_private: bool) -> str:
    """422 `webhook.url.invalid` for a URL that is not http(s) or (unless allowed) not public."""
    from mutoscope.errors import UserError
    from mutoscope.serve.webhooks import check_url

    try:
        return check_url(url, allow_private=allow_private)
    except UserError as e:
        raise ApiError(422, e.code, e.message, field="webhook_url") from None


def webhook_secret(session, user_id: str, *, rotate: bool = False) -> str:
    """The user's signing secret (created on first use; `rotate` replaces it)."""
    from mutoscope.serve.tables import User
    from mutoscope.serve.webhooks import generate_secret

    user = session.get(User, user_id, with_for_update=True)
    if user.webhook_secret is None or rotate:
        user.webhook_secret = generate_secret()
    return user.webhook_secret


def notify_finished(db, generation_id: str) -> None:
    """POST `generation.<status>` to the generation's webhook_url, signed with its owner's secret.

    Delivery (with retries and backoff) runs on a background thread: a slow receiver never holds
    up a worker or a request. The message id is derived from the generation, so a receiver can
    de-duplicate however many times this is called.
    """
    from mutoscope.serve.tables import Generation
    from mutoscope.serve.views import generation_view, link_secret

    with db.write() as s:
        gen = s.get(Generation, generation_id)
        if gen is None or not gen.webhook_url:
            return
        secret = webhook_secret(s, gen.user_id)
        data = generation_view(s, gen, link_secret(s), ttl_s=24 * 3600)
        url, status = gen.webhook_url, gen.status
    from mutoscope.serve.webhooks import WebhookSender

    data = json.loads(json.dumps(data, default=str))
    try:
        WebhookSender(secret).send_in_background(
            url, f"generation.{status}", data, msg_id=f"msg_{generation_id}"
        )
    except Exception:  # a webhook problem never undoes the generation
        log.exception("webhook hand-off failed for %s", generation_id)
