"""`mutoscope admin ...`: users, API keys, worker tokens, invites, credits and the waitlist.

The operator's tool: it opens the database directly (the data dir's SQLite file, or
MUTOSCOPE_DATABASE_URL), migrating it first, so it works on a fresh install. Secrets it creates
(API keys, worker tokens, invite codes) are printed once and stored only hashed. `--json` prints
machine-readable output.
"""

from __future__ import annotations

import argparse
import json

from sqlalchemy import select

from mutoscope.errors import UserError

COMMANDS = {
    "users": {
        "list": ("list users with their balances", []),
        "create": (
            "create a user and print its first API key",
            ["--email", "--name", "--credits", "--admin"],
        ),
        "limits": ("set a user's rate and concurrency limits", ["user", "--rate", "--concurrent"]),
        "disable": ("disable a user (its keys stop working)", ["user"]),
    },
    "keys": {"create": ("create an API key for a user and print it", ["user", "--name"])},
    "worker-tokens": {"create": ("create a worker token and print it", ["--name"])},
    "invites": {
        "create": ("create an invite code and print it", ["--email", "--credits"]),
        "list": ("list invites", []),
    },
    "credits": {
        "grant": ("add (or with a negative amount, take back) credits", ["user", "amount", "--note"]),
        "show": ("a user's balance and latest ledger rows", ["user"]),
    },
    "waitlist": {
        "list": ("list waitlist entries", ["--status"]),
        "approve": ("approve an entry: prints its invite code", ["entry", "--credits"]),
        "reject": ("reject an entry", ["entry"]),
    },
}

_ARGS = {
    "--email": dict(default=None, help="email address"),
    "--name": dict(default="", help="display name"),
    "--credits": dict(type=int, default=None, help="starter credits (default: the server's starter credits)"),
    "--admin": dict(action="store_true", help="make the user an admin"),
    "--rate": dict(type=int, default=None, help="requests per minute"),
    "--concurrent": dict(type=int, default=None, help="queued + running generations at once"),
    "--note": dict(default="admin grant", help="ledger note"),
    "--status": dict(default=None, choices=["pending", "approved", "rejected"], help="only this status"),
    "user": dict(help="user id or email"),
    "entry": dict(help="waitlist entry id or email"),
    "amount": dict(type=int, help="credits"),
}


def add_parser(subparsers) -> None:
    admin = subparsers.add_parser(
        "admin",
        help="administer users, keys, invites, credits and the waitlist",
        description=__doc__.splitlines()[0],
    )
    admin.add_argument(
        "--data-dir", default=None, help="data directory (default $MUTOSCOPE_DATA_DIR or ./data)"
    )
    admin.add_argument(
        "--database-url", default=None, help="SQLAlchemy URL (default: SQLite in the data dir)"
    )
    admin.add_argument("--json", action="store_true", help="print JSON")
    admin.set_defaults(func=lambda args: (admin.print_help(), 2)[1])
    groups = admin.add_subparsers(dest="group", metavar="GROUP")
    for group, commands in COMMANDS.items():
        gp = groups.add_parser(
            group, help=f"{group}: {', '.join(commands)}", description=f"mutoscope admin {group}"
        )
        gp.set_defaults(func=lambda args, gp=gp: (gp.print_help(), 2)[1])
        sub = gp.add_subparsers(dest="action", metavar="ACTION")
        for action, (text, arguments) in commands.items():
            p = sub.add_parser(action, help=text, description=text)
            for name in arguments:
                p.add_argument(name, **_ARGS[name])
            p.set_defaults(func=run, handler=f"{group.replace('-', '_')}_{action}")


def run(args: argparse.Namespace) -> int:
    from mutoscope.serve.db import Database
    from mutoscope.serve.problems import ApiError
    from mutoscope.serve.settings import from_env

    settings = from_env(data_dir=args.data_dir, database_url=args.database_url)
    db = Database(settings.url)
    try:
        db.migrate()
        with db.write() as s:
            result = globals()[f"_{args.handler}"](s, args, settings)
    except ApiError as e:
        raise UserError(e.code, e.detail) from None
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print_plain(result)
    return 0


def _print_plain(result) -> None:
    rows = result if isinstance(result, list) else [result]
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items() if v not in (None, "")))


def _users_list(s, args, settings):
    from mutoscope.serve import credits
    from mutoscope.serve.tables import User

    users = s.scalars(select(User).order_by(User.id)).all()
    return [
        {"id": u.id, "email": u.email, "name": u.name, "admin": u.is_admin,
         "disabled": u.disabled_at is not None, "balance": credits.balance(s, u.id).available}
        for u in users
    ]  # fmt: skip


def _users_create(s, args, settings):
    from mutoscope.serve import accounts

    amount = settings.starter_credits if args.credits is None else args.credits
    user = accounts.create_user(s, email=args.email, name=args.name, credits_=amount, is_admin=args.admin)
    _, token = accounts.create_api_key(s, user.id, name="created by admin")
    return {"id": user.id, "email": user.email, "credits": amount, "api_key": token}


def _users_limits(s, args, settings):
    from mutoscope.serve import accounts

    user = accounts.find_user(s, args.user)
    if args.rate is not None:
        user.rate_per_minute = args.rate
    if args.concurrent is not None:
        user.max_concurrent_jobs = args.concurrent
    return {
        "id": user.id,
        "rate_per_minute": user.rate_per_minute,
        "max_concurrent_jobs": user.max_concurrent_jobs,
    }


def _users_disable(s, args, settings):
    from mutoscope.serve import accounts
    from mutoscope.serve.tables import utcnow

    user = accounts.find_user(s, args.user)
    user.disabled_at = user.disabled_at or utcnow()
    return {"id": user.id, "disabled": True}


def _keys_create(s, args, settings):
    from mutoscope.serve import accounts

    user = accounts.find_user(s, args.user)
    key, token = accounts.create_api_key(s, user.id, name=args.name)
    return {"id": key.id, "user": user.id, "api_key": token}


def _worker_tokens_create(s, args, settings):
    from mutoscope.serve import accounts

    return {"worker_token": accounts.create_worker_token(s, name=args.name)}


def _invites_create(s, args, settings):
    from mutoscope.serve import accounts

    amount = settings.starter_credits if args.credits is None else args.credits
    invite, code = accounts.create_invite(s, credits_=amount, email=args.email)
    return {"id": invite.id, "email": invite.email, "credits": amount, "invite_code": code}


def _invites_list(s, args, settings):
    from mutoscope.serve.tables import Invite

    return [
        {"id": i.id, "email": i.email, "credits": i.credits, "created_at": i.created_at,
         "redeemed_by": i.redeemed_by}
        for i in s.scalars(select(Invite).order_by(Invite.id))
    ]  # fmt: skip


def _credits_grant(s, args, settings):
    from mutoscope.serve import accounts, credits

    user = accounts.find_user(s, args.user)
    credits.grant(s, user.id, args.amount, note=args.note)
    s.flush()
    return {"id": user.id, "granted": args.amount, "balance": credits.balance(s, user.id).available}


def _credits_show(s, args, settings):
    from mutoscope.serve import accounts, credits
    from mutoscope.serve.tables import LedgerEntry

    user = accounts.find_user(s, args.user)
    balance = credits.balance(s, user.id)
    rows = s.scalars(
        select(LedgerEntry).where(LedgerEntry.user_id == user.id).order_by(LedgerEntry.id.desc()).limit(20)
    )
    ledger = [{"kind": r.kind, "delta": r.delta, "generation": r.generation_id, "note": r.note} for r in rows]
    return {"id": user.id, "balance": balance.available, "reserved": balance.reserved, "ledger": ledger}


def _waitlist_list(s, args, settings):
    from mutoscope.serve.tables import WaitlistEntry

    query = select(WaitlistEntry).order_by(WaitlistEntry.id)
    if args.status:
        query = query.where(WaitlistEntry.status == args.status)
    return [
        {"id": e.id, "email": e.email, "name": e.name, "status": e.status, "note": e.note}
        for e in s.scalars(query)
    ]


def _waitlist_approve(s, args, settings):
    from mutoscope.serve import accounts

    amount = settings.starter_credits if args.credits is None else args.credits
    entry, code = accounts.approve(s, args.entry, amount)
    return {
        "id": entry.id,
        "email": entry.email,
        "status": entry.status,
        "credits": amount,
        "invite_code": code,
    }


def _waitlist_reject(s, args, settings):
    from mutoscope.serve import accounts

    entry = accounts.reject(s, args.entry)
    return {"id": entry.id, "email": entry.email, "status": entry.status}
