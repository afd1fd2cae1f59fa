"""The database: SQLAlchemy 2 tables, and the small Enums of the states their rows move through.

Times are naive UTC datetimes everywhere (SQLite keeps no zone; one convention for both databases).
The schema itself is owned by the Alembic migrations in `serve/migrations/`; these classes must
match them (a test compares the two).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class GenerationStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (GenerationStatus.SUCCEEDED, GenerationStatus.FAILED, GenerationStatus.CANCELED)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"  # leased to a worker until lease_expires_at
    DONE = "done"


class LedgerKind(StrEnum):
    GRANT = "grant"  # credits given (starter credits, admin top-up): +n
    RESERVE = "reserve"  # held when a generation is enqueued: -cost
    RELEASE = "release"  # a hold given back (failure, cancel, and just before the charge): +cost
    CHARGE = "charge"  # the final price of a succeeded generation: -cost


class WaitlistStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


Timestamp = DateTime(timezone=False)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[Any]: JSON, dt.datetime: Timestamp}


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)  # None: the server default
    max_concurrent_jobs: Mapped[int | None] = mapped_column(Integer)
    # Signs this user's webhooks (Standard Webhooks); kept in clear because the server signs with it.
    webhook_secret: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[dt.datetime | None]


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(20))  # shown in listings: enough to recognise a key
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the whole token
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class WorkerToken(Base):
    __tablename__ = "worker_tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]


class Invite(Base):
    __tablename__ = "invites"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    credits: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    redeemed_at: Mapped[dt.datetime | None]
    redeemed_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))


class WaitlistEntry(Base):
    __tablename__ = "waitlist"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=WaitlistStatus.PENDING)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None]
    invite_id: Mapped[str | None] = mapped_column(ForeignKey("invites.id"))


class ModelEntry(Base):
    """A model some worker has loaded: its id and capabilities, as the worker registered them."""

    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    info: Mapped[dict[str, Any]]
    registered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Generation(Base):
    __tablename__ = "generations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # time-ordered: the list's cursor
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default=GenerationStatus.QUEUED)
    model_id: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]]  # the normalised request, seed included: enough to reproduce it
    cost: Mapped[int] = mapped_column(Integer)
    credits_reserved: Mapped[int] = mapped_column(Integer, default=0)
    credits_charged: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(32))
    eta_s: Mapped[float | None] = mapped_column(Float)
    error_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_retryable: Mapped[bool | None] = mapped_column(Boolean)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    moderation: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # flags raised (never blocks)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    event_seq: Mapped[int] = mapped_column(Integer, default=0)  # id of its latest event
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    deleted_at: Mapped[dt.datetime | None]

    __table_args__ = (
        Index("ix_generations_user_id", "user_id", "id"),
        Index("ix_generations_user_status", "user_id", "status"),
    )


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    generation_id: Mapped[str | None] = mapped_column(ForeignKey("generations.id"))  # None: in flight
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Job(Base):
    """The queue: one row per generation; claimed with a lease, fenced by its lease token."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    generation_id: Mapped[str] = mapped_column(ForeignKey("generations.id"), unique=True)
    model_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(64))
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_jobs_status_id", "status", "id"),)


class GenerationEvent(Base):
    """What SSE clients read: (generation, seq) is the event id they resume from."""

    __tablename__ = "generation_events"
    generation_id: Mapped[str] = mapped_column(ForeignKey("generations.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # status | progress | output
    data: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LedgerEntry(Base):
    """Append-only: rows are inserted, never updated or deleted. A balance is the sum of deltas."""

    __tablename__ = "ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int] = mapped_column(BigInteger)
    generation_id: Mapped[str | None] = mapped_column(ForeignKey("generations.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Upload(Base):
    __tablename__ = "uploads"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    content_type: Mapped[str] = mapped_column(String(40))
    bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)  # relative to the uploads directory
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Feedback(Base):
    __tablename__ = "feedback"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    generation_id: Mapped[str] = mapped_column(ForeignKey("generations.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    thumb: Mapped[str | None] = mapped_column(String(8))  # up | down
    rating: Mapped[int | None] = mapped_column(Integer)  # 1..5
    tags: Mapped[list[Any]]
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Preference(Base):
    """A pairwise choice between two takes of one prompt: the DPO data set's rows."""

    __tablename__ = "preferences"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    chosen_id: Mapped[str] = mapped_column(ForeignKey("generations.id"))
    rejected_id: Mapped[str] = mapped_column(ForeignKey("generations.id"))
    prompt: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class KeyValue(Base):
    """Server-wide values shared by every API replica (the link-signing secret)."""

    __tablename__ = "kv"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
