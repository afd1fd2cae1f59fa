"""The FastAPI app: routes, problem+json errors, the studio at `/`, and the background threads.

`create_app(settings, engine_factory=...)` is everything `mutoscope serve` runs. At start-up it
migrates the database (Alembic), then starts a reaper thread (expired leases back to the queue)
and, given an engine factory, one in-process worker thread that loads the model once and then
leases jobs like any remote worker. Without an engine factory the API only queues, and remote
workers (`mutoscope worker --server URL`) do the work.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mutoscope import __version__
from mutoscope.serve import hooks, problems, queue, submit
from mutoscope.serve.db import Database
from mutoscope.serve.deps import ServeContext
from mutoscope.serve.engine import Engine
from mutoscope.serve.limits import RateLimiter
from mutoscope.serve.problems import ApiError
from mutoscope.serve.routes import ROUTERS
from mutoscope.serve.settings import ServeSettings
from mutoscope.serve.sources import LocalSource
from mutoscope.serve.storage import Storage
from mutoscope.serve.views import link_secret
from mutoscope.serve.worker import Worker

log = logging.getLogger("mutoscope.serve")

STUDIO_DIR = Path(__file__).resolve().parent.parent / "studio"


class Runtime:
    """The server's state and threads, from start-up to shutdown."""

    def __init__(self, settings: ServeSettings, engine_factory: Callable[[], Engine] | None):
        self.settings, self.engine_factory = settings, engine_factory
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.worker: Worker | None = None
        self.worker_error: BaseException | None = None

    def start(self) -> ServeContext:
        s = self.settings
        db = Database(s.url)
        db.migrate()
        with db.write() as session:
            secret = link_secret(session)
        moderator = (
            hooks.Moderator(s.moderation_policy) if s.moderation_policy not in (None, "", "off") else None
        )
        self.ctx = ServeContext(s, db, Storage(s), RateLimiter(), moderator, secret)
        self._thread("reaper", self._reap)
        if self.engine_factory is not None:
            self._thread("worker", self._work)
        return self.ctx

    def _thread(self, name: str, target) -> None:
        thread = threading.Thread(target=target, name=f"mutoscope-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def _reap(self) -> None:
        """Requeue expired leases; once a minute, forget old idempotency keys."""
        last_sweep = 0.0
        while not self.stop.wait(self.settings.reaper_interval_s):
            try:
                for finished in queue.reap(self.ctx.db, self.settings.max_attempts):
                    hooks.notify_finished(self.ctx.db, finished.generation_id)
                if time.monotonic() - last_sweep > 60:
                    submit.expire_keys(self.ctx)
                    last_sweep = time.monotonic()
            except Exception:
                log.exception("reaper pass failed; retrying")

    def _work(self) -> None:
        try:
            engine = self.engine_factory()
        except BaseException as e:  # keep the API up; /v1/models stays empty and says why in the log
            self.worker_error = e
            log.exception("the in-process worker could not load its model")
            return
        source = LocalSource(self.ctx.db, self.ctx.storage, self.settings)
        self.worker = Worker(source, engine, self.ctx.storage.scratch_dir("worker"), worker_id="in-process")
        self.worker.run(self.stop)

    def shutdown(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        self.ctx.db.dispose()


def create_app(settings: ServeSettings, *, engine_factory: Callable[[], Engine] | None = None) -> FastAPI:
    runtime = Runtime(settings, engine_factory)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.ctx = runtime.start()
        app.state.runtime = runtime
        yield
        runtime.shutdown()

    app = FastAPI(
        title="mutoscope",
        version=__version__,
        summary="Text-to-video generation: a queue, workers, accounts, credits and a studio.",
        lifespan=lifespan,
    )
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router)
    if (STUDIO_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=STUDIO_DIR, html=True), name="studio")
    else:

        @app.get("/", include_in_schema=False)
        def no_studio():
            raise ApiError(
                404, "studio.missing", f"the studio is not installed ({STUDIO_DIR} has no index.html)"
            )

    return app
