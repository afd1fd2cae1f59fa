"""Fixtures for the serving tests; the machinery is in harness.py (read its docstring).

`server` is parametrised over SQLite and PostgreSQL; the postgres instance is marked `postgres`
and FAILS (never skips) when PostgreSQL cannot be reached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from harness import GatedEngine, Server, postgres_database, real_engine, settings_for


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request, tmp_path_factory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"serve-{request.param}")
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_database()) if request.param == "postgres" else None
        engine = GatedEngine(real_engine())
        yield stack.enter_context(Server(settings_for(tmp, url), engine))
