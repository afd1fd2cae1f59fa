"""Where a worker gets jobs: the database directly (in-process) or the API over HTTP (remote).

Both implement `worker.JobSource`, and both end in the same `queue` functions: `HttpSource` calls
/v1/worker/..., whose routes call exactly what `LocalSource` calls.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx

from mutoscope.serve import hooks, inputs, queue, registry
from mutoscope.serve.db import Database
from mutoscope.serve.engine import EngineOutput
from mutoscope.serve.queue import Lease, LeaseLost
from mutoscope.serve.settings import ServeSettings
from mutoscope.serve.storage import Storage
from mutoscope.serve.tables import Generation

log = logging.getLogger("mutoscope.serve.worker")

LEASE_HEADER = "X-Lease-Token"  # GET requests carry the lease token here (POSTs, in their body)


def store_and_complete(db: Database, storage: Storage, lease: Lease, output: EngineOutput) -> None:
    """Move an attempt's files into place and complete its job; a lost lease removes the files."""
    with db.read() as s:
        user_id = s.get(Generation, lease.generation_id).user_id
    outputs = storage.store_outputs(
        user_id, lease.generation_id, lease.token, output.video, output.poster, output.record
    )
    try:
        finished = queue.complete(db, lease.job_id, lease.token, outputs)
    except LeaseLost:
        storage.discard_attempt(user_id, lease.generation_id, lease.token)
        raise
    if finished.status != "succeeded":  # deleted while it ran
        storage.delete_outputs(user_id, lease.generation_id)
    hooks.notify_finished(db, finished.generation_id)


class LocalSource:
    def __init__(self, db: Database, storage: Storage, settings: ServeSettings):
        self.db, self.storage, self.settings = db, storage, settings

    def register(self, model_id: str, info: dict[str, Any]) -> None:
        with self.db.write() as s:
            registry.register(s, model_id, info)

    def lease(self, worker_id: str, model_ids: list[str]) -> Lease | None:
        return queue.claim(self.db, worker_id, model_ids, self.settings.lease_s)

    def fetch_inputs(self, lease: Lease, folder: Path) -> dict[str, Path]:
        """The job's uploads and source video, read where the server keeps them (no copy)."""
        refs = inputs.references(lease.params)
        if not refs:
            return {}
        with self.db.read() as s:
            user_id = s.get(Generation, lease.generation_id).user_id
            return {ref: inputs.locate(s, self.storage, user_id, ref).path for ref in refs}

    def heartbeat(self, lease: Lease, progress: float, stage: str | None, eta_s: float | None) -> bool:
        return queue.heartbeat(
            self.db,
            lease.job_id,
            lease.token,
            progress=progress,
            stage=stage,
            eta_s=eta_s,
            lease_s=lease.lease_s,
        )

    def complete(self, lease: Lease, output: EngineOutput) -> None:
        store_and_complete(self.db, self.storage, lease, output)

    def fail(self, lease: Lease, code: str, message: str, retryable: bool) -> None:
        finished = queue.fail(
            self.db,
            lease.job_id,
            lease.token,
            code=code,
            message=message,
            retryable=retryable,
            max_attempts=self.settings.max_attempts,
        )
        if finished is not None:
            hooks.notify_finished(self.db, finished.generation_id)

    def canceled(self, lease: Lease) -> None:
        finished = queue.acknowledge_cancel(self.db, lease.job_id, lease.token)
        hooks.notify_finished(self.db, finished.generation_id)


class HttpSource:
    """The worker side of /v1/worker/...; `token` is a worker token (`mutoscope admin worker-token`)."""

    def __init__(
        self, server: str, token: str, *, timeout_s: float = 60.0, client: httpx.Client | None = None
    ):
        self.client = client or httpx.Client(
            base_url=server.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s
        )

    def _post(self, path: str, **kwargs) -> httpx.Response:
        r = self.client.post(f"/v1/worker{path}", **kwargs)
        if r.status_code >= 400:
            self._raise(r, f"POST /v1/worker{path}")
        return r

    @staticmethod
    def _raise(r: httpx.Response, what: str) -> None:
        problem = r.json() if r.headers.get("content-type", "").startswith("application/problem+json") else {}
        if r.status_code == 409 and problem.get("code") == "lease.lost":
            raise LeaseLost(problem.get("detail", ""))
        if r.status_code == 404 and problem.get("code") == "job.input.unavailable":
            raise inputs.InputUnavailable(problem["code"], problem.get("detail", ""))
        raise RuntimeError(f"{what}: {r.status_code} {r.text[:300]}")

    def register(self, model_id: str, info: dict[str, Any]) -> None:
        self._post("/models", json={"id": model_id, "info": info})

    def lease(self, worker_id: str, model_ids: list[str]) -> Lease | None:
        r = self._post("/lease", json={"worker_id": worker_id, "models": model_ids})
        if r.status_code == 204:
            return None
        return Lease(**r.json())

    def fetch_inputs(self, lease: Lease, folder: Path) -> dict[str, Path]:
        """Download the job's uploads and source video into `folder`, as <reference><suffix>."""
        found = {}
        for ref in inputs.references(lease.params):
            url = f"/v1/worker/jobs/{lease.job_id}/inputs/{ref}"
            try:
                with self.client.stream("GET", url, headers={LEASE_HEADER: lease.token}) as r:
                    if r.status_code >= 400:
                        r.read()
                        self._raise(r, f"GET {url}")
                    folder.mkdir(parents=True, exist_ok=True)
                    suffix = inputs.SUFFIXES.get(r.headers.get("content-type", "").split(";")[0], "")
                    found[ref] = folder / f"{ref}{suffix}"
                    with found[ref].open("wb") as f:
                        for chunk in r.iter_bytes():
                            f.write(chunk)
            except httpx.TransportError as e:  # the server is briefly unreachable: another attempt may
                raise inputs.InputUnavailable("worker.input.download", f"{url}: {e}", retryable=True) from e
        return found

    def heartbeat(self, lease: Lease, progress: float, stage: str | None, eta_s: float | None) -> bool:
        body = {"token": lease.token, "progress": progress, "stage": stage, "eta_s": eta_s}
        return bool(self._post(f"/jobs/{lease.job_id}/heartbeat", json=body).json()["cancel"])

    def complete(self, lease: Lease, output: EngineOutput) -> None:
        with output.video.open("rb") as video, output.poster.open("rb") as poster:
            self._post(
                f"/jobs/{lease.job_id}/complete",
                data={"token": lease.token, "record": json.dumps(output.record)},
                files={
                    "video": ("video.mp4", video, "video/mp4"),
                    "poster": ("poster.png", poster, "image/png"),
                },
            )

    def fail(self, lease: Lease, code: str, message: str, retryable: bool) -> None:
        body = {"token": lease.token, "code": code, "message": message, "retryable": retryable}
        self._post(f"/jobs/{lease.job_id}/fail", json=body)

    def canceled(self, lease: Lease) -> None:
        self._post(f"/jobs/{lease.job_id}/canceled", json={"token": lease.token})
