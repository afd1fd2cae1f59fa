"""What users think of their videos: ratings per generation, and pairwise preferences.

These rows are the data flywheel: `mutoscope prefs` turns them into the DPO preference set.
"""

from __future__ import annotations

from fastapi import APIRouter

from mutoscope.serve.deps import Ctx, CurrentUser
from mutoscope.serve.ids import new_id
from mutoscope.serve.problems import ApiError
from mutoscope.serve.routes.generations import owned
from mutoscope.serve.schemas import FeedbackCreate, PreferenceCreate
from mutoscope.serve.tables import Feedback, GenerationStatus, Preference
from mutoscope.serve.views import utc

router = APIRouter(tags=["feedback"])


def _same_prompt(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


@router.post("/v1/generations/{gen_id}/feedback", status_code=201)
def give_feedback(gen_id: str, body: FeedbackCreate, user: CurrentUser, ctx: Ctx) -> dict:
    """A thumb (up / down) and/or a rating (1-5), with optional tags and a comment."""
    with ctx.db.write() as s:
        gen = owned(s, gen_id, user.id)
        if gen.status != GenerationStatus.SUCCEEDED:
            raise ApiError(
                409, "generation.not_ready", f"generation {gen_id} is {gen.status}; rate finished videos"
            )
        row = Feedback(
            id=new_id("fb"),
            generation_id=gen.id,
            user_id=user.id,
            thumb=body.thumb,
            rating=body.rating,
            tags=sorted(set(body.tags)),
            comment=body.comment,
        )
        s.add(row)
        s.flush()
        return {
            "id": row.id,
            "object": "feedback",
            "generation_id": gen.id,
            "thumb": row.thumb,
            "rating": row.rating,
            "tags": row.tags,
            "comment": row.comment,
            "created_at": utc(row.created_at),
        }


@router.post("/v1/preferences", status_code=201)
def give_preference(body: PreferenceCreate, user: CurrentUser, ctx: Ctx) -> dict:
    """The better of two takes of one prompt (`chosen`) over the other (`rejected`)."""
    if body.chosen == body.rejected:
        raise ApiError(
            422, "preference.same_generation", "chosen and rejected must be two different generations"
        )
    with ctx.db.write() as s:
        chosen, rejected = owned(s, body.chosen, user.id), owned(s, body.rejected, user.id)
        for gen in (chosen, rejected):
            if gen.status != GenerationStatus.SUCCEEDED:
                raise ApiError(409, "generation.not_ready", f"generation {gen.id} is {gen.status}")
        if not _same_prompt(chosen.prompt, rejected.prompt):
            raise ApiError(
                422, "preference.prompt_mismatch", "a preference compares two takes of the same prompt"
            )
        row = Preference(
            id=new_id("pref"),
            user_id=user.id,
            chosen_id=chosen.id,
            rejected_id=rejected.id,
            prompt=chosen.prompt,
            reason=body.reason,
        )
        s.add(row)
        s.flush()
        return {
            "id": row.id,
            "object": "preference",
            "chosen": row.chosen_id,
            "rejected": row.rejected_id,
            "prompt": row.prompt,
            "reason": row.reason,
            "created_at": utc(row.created_at),
        }
