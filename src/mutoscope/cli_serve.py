"""`mutoscope serve | worker | admin`: run the API, run a remote worker, administer accounts.

mutoscope serve                                   API + studio + one in-process worker on :8000
mutoscope worker --server URL --token T           a worker on another machine (no DB access)
mutoscope admin waitlist approve ann@example.com  prints an invite code
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from mutoscope.errors import UserError


def add_parser(subparsers) -> None:
    _add_serve(subparsers)
    _add_worker(subparsers)
    from mutoscope.serve import admin_cli

    admin_cli.add_parser(subparsers)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    g.add_argument(
        "--preset", default=None, help="a random, untrained model of this preset (e.g. test, tiny)"
    )
    p.add_argument("--device", default="cpu", help="torch device for the model (default cpu)")


def _add_serve(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the API and the studio, with an in-process worker",
        description="Run the HTTP API (OpenAPI at /docs), the studio at /, and one worker thread that "
        "loads the model once. State goes to --data-dir (SQLite) or MUTOSCOPE_DATABASE_URL.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--data-dir", default=None, help="data directory (default $MUTOSCOPE_DATA_DIR or ./data)")
    p.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite in the data dir)")
    p.add_argument("--no-worker", action="store_true", help="queue only; remote workers do the work")
    p.add_argument("--moderation", default=None, help="policy: default, strict, a YAML path, or off")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    _add_model_args(p)
    p.set_defaults(func=run_serve)


def _add_worker(subparsers) -> None:
    p = subparsers.add_parser(
        "worker",
        help="lease and run generation jobs from a server over HTTP",
        description="A worker for another machine (a GPU box): loads the model once, leases jobs from "
        "--server with a worker token (`mutoscope admin worker-tokens create`), uploads the videos.",
    )
    p.add_argument("--server", required=True, help="the API's base URL, e.g. http://10.0.0.2:8000")
    p.add_argument("--token", default=os.environ.get("MUTOSCOPE_WORKER_TOKEN"), help="worker token "
                   "(default $MUTOSCOPE_WORKER_TOKEN)")  # fmt: skip
    p.add_argument("--scratch", default=None, help="folder for work in progress (default: a temp dir)")
    p.add_argument("--poll-s", type=float, default=1.0, help="seconds between polls of an empty queue")
    p.add_argument("--engine", default=None, help="advanced: MODULE:CALLABLE returning an engine (it "
                   "gets the parsed arguments); default: generate() over --model/--preset")  # fmt: skip
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    _add_model_args(p)
    p.set_defaults(func=run_worker)


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per plugin at start-up otherwise


def engine_factory(args: argparse.Namespace):
    """A zero-argument callable that loads the engine (called once, in the worker)."""
    if getattr(args, "engine", None):
        module, _, name = args.engine.partition(":")
        if not name:
            raise UserError("worker.engine.invalid", f"--engine must be MODULE:CALLABLE, got {args.engine!r}")
        factory = getattr(importlib.import_module(module), name)
        return lambda: factory(args)

    from mutoscope.serve.engine import GenerateEngine

    def load():
        from mutoscope.generate import DEFAULT_MODEL

        if args.preset is None and args.model is None and not (DEFAULT_MODEL / "config.json").is_file():
            logging.getLogger("mutoscope.serve").warning(
                "no shipped weights in %s yet: serving a RANDOM, untrained 'tiny' model (videos are noise)",
                DEFAULT_MODEL,
            )
            return GenerateEngine.load(preset="tiny", device=args.device)
        return GenerateEngine.load(args.model, preset=args.preset, device=args.device)

    return load


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mutoscope.serve import accounts
    from mutoscope.serve.app import create_app
    from mutoscope.serve.db import Database
    from mutoscope.serve.settings import from_env
    from mutoscope.serve.tables import User

    _logging(args.log_level)
    settings = from_env(
        data_dir=args.data_dir, database_url=args.database_url, moderation_policy=args.moderation
    )
    # A fresh install has no account to sign in with: make an admin and show its key, once.
    db = Database(settings.url)
    db.migrate()
    with db.write() as s:
        if s.query(User.id).first() is None:
            user = accounts.create_user(
                s, name="admin", credits_=10 * settings.starter_credits, is_admin=True
            )
            _, token = accounts.create_api_key(s, user.id, name="first admin key")
            print(f"\n  first start: created an admin account. Its API key (shown once):\n\n    {token}\n")
    db.dispose()
    app = create_app(settings, engine_factory=None if args.no_worker else engine_factory(args))
    print(f"  mutoscope: studio and API on http://{args.host}:{args.port}/  (OpenAPI: /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def run_worker(args: argparse.Namespace) -> int:
    import tempfile

    from mutoscope.serve.sources import HttpSource
    from mutoscope.serve.worker import Worker

    if not args.token:
        raise UserError("worker.token.missing", "give --token (or set MUTOSCOPE_WORKER_TOKEN)")
    _logging(args.log_level)
    engine = engine_factory(args)()
    scratch = Path(args.scratch) if args.scratch else Path(tempfile.mkdtemp(prefix="mutoscope-worker-"))
    worker = Worker(HttpSource(args.server, args.token), engine, scratch, poll_s=args.poll_s)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # finish the current job's report, then stop
        signal.signal(sig, lambda *_: stop.set())
    print(
        f"mutoscope worker {worker.worker_id}: model {engine.model_id}, server {args.server}", file=sys.stderr
    )
    worker.run(stop)
    return 0


def print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))
