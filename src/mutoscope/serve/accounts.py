"""Users, API keys, worker tokens, invites and the beta waitlist (used by the routes and the admin CLI).

The waitlist flow: someone signs up (POST /v1/waitlist) -> an admin approves the entry
(`mutoscope admin waitlist approve EMAIL`), which creates an invite and prints its code -> the
person redeems the code (POST /v1/accounts, or the studio's sign-in) -> an account with the
invite's starter credits and a first API key, shown once. Secrets are stored only as sha256.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mutoscope.serve import credits
from mutoscope.serve.ids import (
    API_KEY_PREFIX,
    WORKER_TOKEN_PREFIX,
    new_id,
    new_invite_code,
    new_secret,
    normalise_invite,
    token_hash,
)
from mutoscope.serve.problems import ApiError
from mutoscope.serve.tables import ApiKey, Invite, User, WaitlistEntry, WaitlistStatus, WorkerToken, utcnow


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request (plain values: it outlives the session that read it)."""

    id: str
    email: str | None
    name: str
    is_admin: bool
    rate_per_minute: int | None
    max_concurrent_jobs: int | None


def principal(user: User) -> Principal:
    return Principal(
        user.id, user.email, user.name, user.is_admin, user.rate_per_minute, user.max_concurrent_jobs
    )


def create_user(
    s: Session, *, email: str | None = None, name: str = "", credits_: int = 0, is_admin: bool = False
) -> User:
    email = email.strip().lower() if email else None
    if email and s.scalar(select(User.id).where(User.email == email)):
        raise ApiError(409, "user.exists", f"a user with email {email!r} exists")
    user = User(id=new_id("usr"), email=email, name=name, is_admin=is_admin)
    s.add(user)
    s.flush()
    if credits_:
        credits.grant(s, user.id, credits_, note="starter credits")
    return user


def find_user(s: Session, ref: str) -> User:
    """A user by id or email."""
    user = s.get(User, ref) or s.scalar(select(User).where(User.email == ref.strip().lower()))
    if user is None:
        raise ApiError(404, "user.not_found", f"no user {ref!r}")
    return user


def create_api_key(s: Session, user_id: str, name: str = "") -> tuple[ApiKey, str]:
    """A new key; the token is returned here and never again."""
    token = new_secret(API_KEY_PREFIX)
    key = ApiKey(
        id=new_id("key"), user_id=user_id, name=name, prefix=token[:10], token_hash=token_hash(token)
    )
    s.add(key)
    return key, token


def authenticate(s: Session, token: str) -> tuple[User, ApiKey] | None:
    row = s.execute(
        select(User, ApiKey)
        .join(ApiKey, ApiKey.user_id == User.id)
        .where(
            ApiKey.token_hash == token_hash(token), ApiKey.revoked_at.is_(None), User.disabled_at.is_(None)
        )
    ).first()
    return (row[0], row[1]) if row else None


def create_worker_token(s: Session, name: str = "") -> str:
    token = new_secret(WORKER_TOKEN_PREFIX)
    s.add(WorkerToken(id=new_id("wkt"), name=name, token_hash=token_hash(token)))
    return token


def worker_token_valid(s: Session, token: str) -> bool:
    return bool(
        s.scalar(
            select(WorkerToken.id).where(
                WorkerToken.token_hash == token_hash(token), WorkerToken.revoked_at.is_(None)
            )
        )
    )


def create_invite(s: Session, *, credits_: int, email: str | None = None) -> tuple[Invite, str]:
    code = new_invite_code()
    invite = Invite(id=new_id("inv"), code_hash=token_hash(code), email=email, credits=credits_)
    s.add(invite)
    s.flush()
    return invite, code


def redeem_invite(s: Session, code: str, *, email: str | None, name: str) -> tuple[User, str]:
    """One use per code: the account, with the invite's credits and a first API key."""
    invite = s.scalar(
        select(Invite).where(Invite.code_hash == token_hash(normalise_invite(code))).with_for_update()
    )
    if invite is None or invite.redeemed_at is not None:
        raise ApiError(404, "invite.invalid", "this invite code is unknown or already used")
    # An invite made for a waitlist entry carries its email: the account gets that one.
    user = create_user(s, email=invite.email or email, name=name, credits_=invite.credits)
    invite.redeemed_at, invite.redeemed_by = utcnow(), user.id
    _, token = create_api_key(s, user.id, name="first key")
    return user, token


def join_waitlist(s: Session, email: str, name: str = "", note: str = "") -> WaitlistEntry:
    """Idempotent per email: signing up twice keeps the first entry."""
    email = email.strip().lower()
    entry = s.scalar(select(WaitlistEntry).where(WaitlistEntry.email == email))
    if entry is None:
        entry = WaitlistEntry(id=new_id("wl"), email=email, name=name, note=note)
        s.add(entry)
        s.flush()
    return entry


def find_waitlist_entry(s: Session, ref: str) -> WaitlistEntry:
    entry = s.get(WaitlistEntry, ref) or s.scalar(
        select(WaitlistEntry).where(WaitlistEntry.email == ref.strip().lower())
    )
    if entry is None:
        raise ApiError(404, "waitlist.not_found", f"no waitlist entry {ref!r}")
    return entry


def approve(s: Session, ref: str, credits_: int) -> tuple[WaitlistEntry, str]:
    """Approve an entry: a fresh invite (for its email) whose code is returned once."""
    entry = find_waitlist_entry(s, ref)
    if entry.status == WaitlistStatus.APPROVED:
        raise ApiError(409, "waitlist.already_approved", f"{entry.email} was approved already")
    invite, code = create_invite(s, credits_=credits_, email=entry.email)
    entry.status, entry.decided_at, entry.invite_id = WaitlistStatus.APPROVED, utcnow(), invite.id
    return entry, code


def reject(s: Session, ref: str) -> WaitlistEntry:
    entry = find_waitlist_entry(s, ref)
    entry.status, entry.decided_at = WaitlistStatus.REJECTED, utcnow()
    return entry
