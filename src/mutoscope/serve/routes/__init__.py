"""Route modules, one per resource; each is thin: parse, call the domain module, shape the answer."""

from __future__ import annotations

from mutoscope.serve.routes import account, feedback, generations, media, public, uploads, worker

ROUTERS = (
    generations.router,
    media.router,
    feedback.router,
    uploads.router,
    account.router,
    public.router,
    worker.router,
)
