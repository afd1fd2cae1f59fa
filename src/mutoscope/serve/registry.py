"""The models workers have loaded: registered by each worker at start (and refreshed as it leases).

GET /v1/models lists them; a generation request names one (or gets the most recently seen) and
is validated against its capabilities. A model is "online" while some worker has been seen with
it within ONLINE_S; jobs for an offline model still queue and wait for a worker.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mutoscope.serve.capabilities import Capabilities
from mutoscope.serve.problems import ApiError
from mutoscope.serve.tables import ModelEntry, utcnow

ONLINE_S = 120.0
SEEN_EVERY_S = 15.0


@dataclass(frozen=True)
class Model:
    id: str
    info: dict[str, Any]
    last_seen_at: dt.datetime

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities.from_dict(self.info.get("capabilities", {}))

    @property
    def online(self) -> bool:
        return (utcnow() - self.last_seen_at).total_seconds() < ONLINE_S


def register(session: Session, model_id: str, info: dict[str, Any]) -> None:
    entry = session.get(ModelEntry, model_id, with_for_update=True)
    if entry is None:
        session.add(ModelEntry(id=model_id, info=info))
    else:
        entry.info, entry.last_seen_at = info, utcnow()


def seen(session: Session, model_ids: list[str]) -> None:
    """A worker asking for work with these models: they are online. Stamped at most every
    SEEN_EVERY_S, so that polling workers do not write on every poll."""
    now = utcnow()
    session.execute(
        update(ModelEntry)
        .where(
            ModelEntry.id.in_(model_ids), ModelEntry.last_seen_at < now - dt.timedelta(seconds=SEEN_EVERY_S)
        )
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


def all_models(session: Session) -> list[Model]:
    rows = session.scalars(select(ModelEntry).order_by(ModelEntry.last_seen_at.desc())).all()
    return [Model(r.id, r.info, r.last_seen_at) for r in rows]


def resolve(session: Session, model_id: str | None) -> Model:
    """The named model, or the most recently seen one; 404 / 503 when there is none."""
    models = all_models(session)
    if model_id is None:
        if not models:
            raise ApiError(
                503,
                "model.unavailable",
                "no model is registered yet: a worker is still loading one, or none runs",
                headers={"Retry-After": "5"},
            )
        return models[0]
    for model in models:
        if model.id == model_id:
            return model
    raise ApiError(404, "model.not_found", f"no model {model_id!r} (see GET /v1/models)")
