"""Endpoints without an API key: the models, the beta waitlist, and redeeming an invite."""

from __future__ import annotations

from fastapi import APIRouter

from mutoscope.serve import accounts, credits, registry
from mutoscope.serve.deps import Ctx, PublicRate
from mutoscope.serve.schemas import AccountCreate, WaitlistJoin
from mutoscope.serve.views import utc

router = APIRouter(tags=["public"])


@router.get("/v1/models")
def list_models(ctx: Ctx) -> dict:
    """The models workers have loaded, with what each can do (its controls, lengths, samplers)."""
    with ctx.db.read() as s:
        models = registry.all_models(s)
    return {
        "data": [
            {"id": m.id, "object": "model", "online": m.online, "last_seen_at": utc(m.last_seen_at), **m.info}
            for m in models
        ],
        "costs": credits.cost_table(),
    }


@router.post("/v1/waitlist", status_code=202, dependencies=[PublicRate])
def join_waitlist(body: WaitlistJoin, ctx: Ctx) -> dict:
    """Ask for beta access. An admin approves entries; approval sends an invite code."""
    with ctx.db.write() as s:
        entry = accounts.join_waitlist(s, body.email, body.name, body.note)
        # The answer is the same for a new and a known email, so the list cannot be probed.
        return {"object": "waitlist_entry", "email": entry.email, "status": "received"}


@router.post("/v1/accounts", status_code=201, dependencies=[PublicRate])
def create_account(body: AccountCreate, ctx: Ctx) -> dict:
    """Redeem an invite code: a new account with starter credits, and its first API key (shown once)."""
    with ctx.db.write() as s:
        user, token = accounts.redeem_invite(s, body.invite_code, email=body.email, name=body.name)
        balance = credits.balance(s, user.id)
        return {
            "object": "account",
            "user": {"id": user.id, "email": user.email, "name": user.name},
            "api_key": token,
            "credits": {"balance": balance.available},
        }


@router.get("/healthz", include_in_schema=False)
def health(ctx: Ctx) -> dict:
    with ctx.db.read() as s:
        models = [m.id for m in registry.all_models(s) if m.online]
    return {"ok": True, "models_online": models}
