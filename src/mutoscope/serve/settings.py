"""Serving settings: one frozen dataclass, read from MUTOSCOPE_* environment variables.

Everything an operator may tune lives here with its default; nothing else in `serve/` reads the
environment. The data directory holds the SQLite file (unless MUTOSCOPE_DATABASE_URL names another
database), the generated outputs and the uploads.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from mutoscope.errors import UserError


@dataclass(frozen=True)
class ServeSettings:
    data_dir: Path = Path("data")
    database_url: str | None = None  # None: sqlite file data_dir/mutoscope.db
    # Queue: a claimed job is held for lease_s; a worker renews it by heartbeats. A job whose lease
    # expires is requeued, up to max_attempts claims in all, then failed and refunded.
    lease_s: float = 30.0
    max_attempts: int = 3
    reaper_interval_s: float = 2.0
    # Per-user defaults; an admin may override them per user.
    rate_per_minute: int = 120
    max_concurrent_jobs: int = 4
    # Unauthenticated endpoints (waitlist, invite redemption): per client address.
    public_rate_per_minute: int = 20
    starter_credits: int = 100
    # Uploads (keyframe images).
    upload_max_bytes: int = 10 * 1024 * 1024
    upload_max_pixels: int = 4096 * 4096
    # Signed links for <video src> and EventSource, which cannot send an Authorization header.
    link_ttl_s: int = 6 * 3600
    sse_poll_s: float = 0.25
    sse_keepalive_s: float = 15.0
    # Idempotency: a key whose first request died mid-way is taken over after this long.
    idempotency_stale_s: float = 60.0
    # The operator's moderation policy: a shipped profile (default, strict), a YAML path, or "off".
    moderation_policy: str = "default"
    # Webhook URLs must resolve to public addresses unless this is on (tests, private networks).
    webhook_allow_private: bool = False

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'mutoscope.db').resolve()}"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    def replace(self, **changes) -> ServeSettings:
        return dataclasses.replace(self, **changes)


_ENV = {
    "data_dir": "MUTOSCOPE_DATA_DIR",
    "database_url": "MUTOSCOPE_DATABASE_URL",
    "lease_s": "MUTOSCOPE_LEASE_S",
    "max_attempts": "MUTOSCOPE_MAX_ATTEMPTS",
    "rate_per_minute": "MUTOSCOPE_RATE_PER_MINUTE",
    "max_concurrent_jobs": "MUTOSCOPE_MAX_CONCURRENT_JOBS",
    "starter_credits": "MUTOSCOPE_STARTER_CREDITS",
    "moderation_policy": "MUTOSCOPE_MODERATION_POLICY",
    "webhook_allow_private": "MUTOSCOPE_WEBHOOK_ALLOW_PRIVATE",
}


def from_env(environ: dict[str, str] | None = None, **overrides) -> ServeSettings:
    """Settings from MUTOSCOPE_* variables, then explicit overrides (CLI flags) on top."""
    environ = os.environ if environ is None else environ
    values: dict = {}
    types = {f.name: f.type for f in dataclasses.fields(ServeSettings)}
    for name, var in _ENV.items():
        raw = environ.get(var)
        if raw in (None, ""):
            continue
        kind = types[name]
        try:
            if name == "data_dir":
                values[name] = Path(raw)
            elif kind in ("int", int):
                values[name] = int(raw)
            elif kind in ("float", float):
                values[name] = float(raw)
            elif kind in ("bool", bool):
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(raw)
                values[name] = raw.lower() in ("1", "true", "yes")
            else:
                values[name] = raw
        except ValueError as e:
            raise UserError("serve.settings.invalid", f"{var}={raw!r} is not a valid {kind}") from e
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "data_dir" in values:
        values["data_dir"] = Path(values["data_dir"])
    return ServeSettings(**values)
