"""/v1/worker/...: the queue over HTTP for remote workers (`mutoscope worker --server URL --token T`).

Authenticated by a worker token, not an API key; each call maps onto one `queue` function, so a
remote worker behaves exactly like the in-process one. A job's inputs (the uploads and the video
its controls name) are served to the worker holding its lease, and to no one else.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Response, UploadFile
from fastapi.responses import FileResponse

from mutoscope.serve import hooks, inputs, queue, registry
from mutoscope.serve.deps import Ctx, WorkerAuth
from mutoscope.serve.engine import EngineOutput
from mutoscope.serve.problems import ApiError
from mutoscope.serve.schemas import WorkerFail, WorkerHeartbeat, WorkerLeaseRequest, WorkerModel, WorkerToken
from mutoscope.serve.sources import store_and_complete
from mutoscope.serve.tables import Generation

router = APIRouter(prefix="/v1/worker", tags=["worker"], dependencies=[WorkerAuth])


def _lost(e: queue.LeaseLost) -> ApiError:
    return ApiError(409, "lease.lost", str(e) or "the lease is no longer yours")


@router.post("/models", status_code=204)
def register_model(body: WorkerModel, ctx: Ctx) -> Response:
    with ctx.db.write() as s:
        registry.register(s, body.id, body.info)
    return Response(status_code=204)


@router.post("/lease")
def lease(body: WorkerLeaseRequest, ctx: Ctx):
    """The oldest queued job for one of these models (200), or nothing to do (204)."""
    got = queue.claim(ctx.db, body.worker_id, body.models, ctx.settings.lease_s)
    return Response(status_code=204) if got is None else dataclasses.asdict(got)


@router.post("/jobs/{job_id}/heartbeat")
def heartbeat(job_id: int, body: WorkerHeartbeat, ctx: Ctx) -> dict:
    try:
        cancel = queue.heartbeat(
            ctx.db, job_id, body.token, progress=body.progress, stage=body.stage, eta_s=body.eta_s,
            lease_s=ctx.settings.lease_s,
        )  # fmt: skip
    except queue.LeaseLost as e:
        raise _lost(e) from None
    return {"cancel": cancel, "lease_s": ctx.settings.lease_s}


@router.get("/jobs/{job_id}/inputs/{ref}", response_class=FileResponse)
def job_input(
    job_id: int, ref: str, ctx: Ctx, x_lease_token: Annotated[str, Header(description="the lease token")]
) -> FileResponse:
    """An upload (`upl_...`) or the video to extend (`gen_...`) that this job's params name: only
    those, and only while the lease is current."""
    try:
        lease = queue.current_lease(ctx.db, job_id, x_lease_token)
        if ref not in inputs.references(lease.params):
            raise ApiError(404, "job.input.not_found", f"job {job_id} has no input {ref!r}")
        with ctx.db.read() as s:
            found = inputs.locate(s, ctx.storage, s.get(Generation, lease.generation_id).user_id, ref)
    except queue.LeaseLost as e:
        raise _lost(e) from None
    except inputs.InputUnavailable as e:
        raise ApiError(404, e.code, e.message) from None
    return FileResponse(found.path, media_type=found.content_type)


@router.post("/jobs/{job_id}/complete", status_code=204)
def complete(
    job_id: int,
    ctx: Ctx,
    token: Annotated[str, Form()],
    record: Annotated[str, Form()],
    video: Annotated[UploadFile, File()],
    poster: Annotated[UploadFile, File()],
) -> Response:
    """The finished files of a job; accepted only from the worker that still holds its lease."""
    try:
        lease = queue.current_lease(ctx.db, job_id, token)
        folder = ctx.storage.scratch_dir(f"upload-{token[:16]}")
        paths = {}
        for name, part, suffix in (("video", video, ".mp4"), ("poster", poster, ".png")):
            paths[name] = folder / f"{name}{suffix}"
            with paths[name].open("wb") as f:
                shutil.copyfileobj(part.file, f)
        output = EngineOutput(paths["video"], paths["poster"], json.loads(record))
        store_and_complete(ctx.db, ctx.storage, lease, output)
    except queue.LeaseLost as e:
        raise _lost(e) from None
    except json.JSONDecodeError:
        raise ApiError(422, "worker.record.invalid", "record must be a JSON object") from None
    finally:
        shutil.rmtree(ctx.storage.scratch / f"upload-{token[:16]}", ignore_errors=True)
    return Response(status_code=204)


@router.post("/jobs/{job_id}/fail", status_code=204)
def fail(job_id: int, body: WorkerFail, ctx: Ctx) -> Response:
    try:
        finished = queue.fail(
            ctx.db, job_id, body.token, code=body.code, message=body.message, retryable=body.retryable,
            max_attempts=ctx.settings.max_attempts,
        )  # fmt: skip
    except queue.LeaseLost as e:
        raise _lost(e) from None
    if finished is not None:
        hooks.notify_finished(ctx.db, finished.generation_id)
    return Response(status_code=204)


@router.post("/jobs/{job_id}/canceled", status_code=204)
def canceled(job_id: int, body: WorkerToken, ctx: Ctx) -> Response:
    try:
        finished = queue.acknowledge_cancel(ctx.db, job_id, body.token)
    except queue.LeaseLost as e:
        raise _lost(e) from None
    hooks.notify_finished(ctx.db, finished.generation_id)
    return Response(status_code=204)
