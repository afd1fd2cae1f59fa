"""Credits: the price of a generation, and an append-only ledger from which balances are derived.

A generation's life in the ledger (rows are only ever inserted):
    reserve  -cost   in the transaction that enqueues its job (402 if the balance is short)
    release  +cost   when it fails or is canceled: the hold is given back, and the story ends; or,
    release  +cost   when it succeeds, immediately followed in the same transaction by
    charge   -cost   the final price.
So the balance (the sum of deltas) is what a user may spend now, and the credits held by queued and
running generations are -(sum of reserve and release rows). Every change to a user's ledger happens
with that user's row locked (PostgreSQL) or the database's write lock held (SQLite), so two
concurrent reservations cannot both spend the same credits: the balance never goes negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mutoscope.serve.problems import ApiError
from mutoscope.serve.tables import Generation, LedgerEntry, LedgerKind, User

# Credits per started second of output, by resolution tier. "base" is the model's native size
# (64x64 for the shipped tiny model); the upscaled tiers cost what their compute costs, roughly.
# docs/API.md shows this table; keep the two in step.
RATE_PER_SECOND: dict[str, int] = {"base": 1, "720p": 4, "1080p": 8}
FPS_30_FACTOR = 2  # 30 fps output interpolates ~4x the frames of the base 8 fps clip


@dataclass(frozen=True)
class Balance:
    available: int  # what a new generation may reserve
    reserved: int  # held by queued and running generations


def cost(seconds: float, resolution: str = "base", fps: float | None = None) -> int:
    """Credits for one generation: rate(tier) x started seconds (x2 at 30 fps)."""
    rate = RATE_PER_SECOND[resolution]
    factor = FPS_30_FACTOR if fps is not None and fps >= 24 else 1
    return max(1, math.ceil(seconds - 1e-9)) * rate * factor


def cost_table() -> dict:
    """The table in plain values (GET /v1/credits shows it to clients)."""
    return {
        "unit": "credits per started second",
        "rate_per_second": dict(RATE_PER_SECOND),
        "fps_30_factor": FPS_30_FACTOR,
    }


def lock_user(session: Session, user_id: str) -> None:
    """Serialise ledger changes per user (PostgreSQL row lock; SQLite holds the write lock already)."""
    session.execute(select(User.id).where(User.id == user_id).with_for_update())


def balance(session: Session, user_id: str) -> Balance:
    rows = session.execute(
        select(LedgerEntry.kind, func.coalesce(func.sum(LedgerEntry.delta), 0))
        .where(LedgerEntry.user_id == user_id)
        .group_by(LedgerEntry.kind)
    ).all()
    by_kind = {kind: int(total) for kind, total in rows}
    held = -(by_kind.get(LedgerKind.RESERVE, 0) + by_kind.get(LedgerKind.RELEASE, 0))
    return Balance(available=sum(by_kind.values()), reserved=held)


def grant(session: Session, user_id: str, amount: int, note: str = "") -> LedgerEntry:
    """Add (or, with a negative amount, take back) credits; never below zero."""
    lock_user(session, user_id)
    if amount < 0 and balance(session, user_id).available + amount < 0:
        raise ApiError(409, "credits.would_be_negative", "cannot take back more than the balance")
    entry = LedgerEntry(user_id=user_id, kind=LedgerKind.GRANT, delta=amount, note=note)
    session.add(entry)
    return entry


def reserve(session: Session, gen: Generation) -> None:
    """Hold gen.cost from its owner's balance; the caller has locked the user (lock_user)."""
    available = balance(session, gen.user_id).available
    if available < gen.cost:
        raise ApiError(
            402,
            "credits.insufficient",
            f"this generation costs {gen.cost} credits; the balance is {available}",
            title="Not enough credits",
            required=gen.cost,
            balance=available,
        )
    session.add(
        LedgerEntry(user_id=gen.user_id, kind=LedgerKind.RESERVE, delta=-gen.cost, generation_id=gen.id)
    )
    gen.credits_reserved = gen.cost


def settle(session: Session, gen: Generation, *, charge: bool) -> None:
    """Release gen's hold, then charge its cost if it succeeded. Idempotent: a settled hold is 0."""
    if gen.credits_reserved <= 0:
        return
    lock_user(session, gen.user_id)
    session.add(
        LedgerEntry(
            user_id=gen.user_id, kind=LedgerKind.RELEASE, delta=gen.credits_reserved, generation_id=gen.id
        )
    )
    if charge:
        session.add(
            LedgerEntry(user_id=gen.user_id, kind=LedgerKind.CHARGE, delta=-gen.cost, generation_id=gen.id)
        )
        gen.credits_charged = gen.cost
    gen.credits_reserved = 0
