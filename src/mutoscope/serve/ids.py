"""Identifiers and secrets: time-ordered public ids, bearer tokens stored only as their sha256.

Public ids are a type prefix and 26 Crockford base32 characters (48 bits of milliseconds, then 80
random bits, as in ULID), so sorting ids sorts by creation time: the list endpoints page on them.
Secrets (API keys, worker tokens, invite codes) are 32 random bytes behind a readable prefix; the
database keeps only their sha256, so a leaked database does not leak working keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# Token prefixes say what a secret is when it turns up in a log or a paste.
API_KEY_PREFIX = "mk_"
WORKER_TOKEN_PREFIX = "mkw_"
INVITE_PREFIX = "inv-"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, r = divmod(value, 32)
        chars.append(_CROCKFORD[r])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """`prefix_` + 26 chars: time-ordered (ms) then random."""
    ms = time.time_ns() // 1_000_000
    return f"{prefix}_{_base32(ms, 10)}{_base32(secrets.randbits(80), 16)}"


def is_id(value: str, prefix: str) -> bool:
    body = value.removeprefix(f"{prefix}_")
    return body != value and len(body) == 26 and all(c in _CROCKFORD for c in body)


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def new_invite_code() -> str:
    """Short enough to type from an email: inv-XXXX-XXXX-XXXX-XXXX (80 bits)."""
    body = _base32(secrets.randbits(80), 16)
    return INVITE_PREFIX + "-".join(body[i : i + 4] for i in range(0, 16, 4))


def normalise_invite(code: str) -> str:
    """Invite codes are read aloud and retyped: ignore case and surrounding space, accept O for 0."""
    return code.strip().upper().replace("O", "0").replace("INV-", INVITE_PREFIX)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()[:32]


def verify_signature(secret: str, message: str, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, message), signature)
