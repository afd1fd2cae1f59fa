"""The worker loop, the same in-process and on a remote machine; only its `JobSource` differs.

    register the model -> loop: lease a job -> fetch its inputs -> engine.run(params, callback, inputs)
                                              -> complete | fail | canceled

`LocalSource` talks to the database (the in-process worker of `mutoscope serve`) and reads a job's
inputs (uploaded images, a video to extend) where the server stores them; `HttpSource` talks to
/v1/worker/... with a worker token, downloads the inputs into the job's folder and uploads the
files (`mutoscope worker --server`), so a GPU box never needs database credentials. While a job
runs, the lease is renewed by heartbeats: from the engine's callback (at most every
`min_heartbeat_s`, carrying progress) and from a keep-alive thread (every lease/3, so that one long
step, or a long download, cannot lose the lease). A heartbeat reply that says "cancel" makes the
next callback raise GenerationCanceled: the engine stops between denoising steps. A lost lease (the
job was reaped and given to another worker) stops the job too, and nothing is reported: the other
attempt owns it now.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mutoscope.serve.engine import Engine, EngineOutput
from mutoscope.serve.queue import Lease, LeaseLost

log = logging.getLogger("mutoscope.serve.worker")

# Share of the job's progress per engine stage (sampling dominates; decode and encode follow).
STAGES = {"starting": (0.0, 0.0), "denoise": (0.0, 0.85), "decode": (0.85, 0.97), "encode": (0.97, 1.0)}


class JobSource(Protocol):
    def register(self, model_id: str, info: dict[str, Any]) -> None: ...
    def lease(self, worker_id: str, model_ids: list[str]) -> Lease | None: ...
    def fetch_inputs(self, lease: Lease, folder: Path) -> dict[str, Path]: ...
    def heartbeat(self, lease: Lease, progress: float, stage: str | None, eta_s: float | None) -> bool: ...
    def complete(self, lease: Lease, output: EngineOutput) -> None: ...
    def fail(self, lease: Lease, code: str, message: str, retryable: bool) -> None: ...
    def canceled(self, lease: Lease) -> None: ...


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Run:
    """The state of one job's run, shared by the callback and the keep-alive thread."""

    lease: Lease
    started: float = field(default_factory=time.monotonic)
    progress: float = 0.0
    stage: str | None = "starting"
    eta_s: float | None = None
    cancel: bool = False
    lost: bool = False
    last_beat: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Worker:
    def __init__(
        self,
        source: JobSource,
        engine: Engine,
        scratch: Path,
        *,
        worker_id: str | None = None,
        poll_s: float = 0.5,
        min_heartbeat_s: float = 0.2,
    ):
        self.source, self.engine, self.scratch = source, engine, Path(scratch)
        self.worker_id = worker_id or default_worker_id()
        self.poll_s, self.min_heartbeat_s = poll_s, min_heartbeat_s
        self.jobs_done = 0

    def register(self) -> None:
        self.source.register(self.engine.model_id, self.engine.info())

    def run(self, stop: threading.Event) -> None:
        """Lease and run jobs until `stop` is set; errors talking to the server are retried."""
        self.register()
        while not stop.is_set():
            try:
                ran = self.run_once()
            except Exception:
                log.exception("worker %s: cannot reach the queue; retrying", self.worker_id)
                ran = False
            if not ran:
                stop.wait(self.poll_s)

    def run_once(self) -> bool:
        """Lease one job and run it; False when the queue had nothing for this model."""
        lease = self.source.lease(self.worker_id, [self.engine.model_id])
        if lease is None:
            return False
        log.info("worker %s: job %s (attempt %d)", self.worker_id, lease.generation_id, lease.attempt)
        self._run(lease)
        return True

    def _run(self, lease: Lease) -> None:
        from mutoscope.generate import GenerationCanceled

        state = _Run(lease)
        out_dir = self.scratch / lease.token
        out_dir.mkdir(parents=True, exist_ok=True)
        stop_keepalive = threading.Event()
        keepalive = threading.Thread(target=self._keepalive, args=(state, stop_keepalive), daemon=True)
        keepalive.start()

        def callback(stage: str, done: int, total: int) -> None:
            lo, hi = STAGES.get(stage, (state.progress, state.progress))
            progress = lo + (hi - lo) * (done / total if total else 1.0)
            elapsed = time.monotonic() - state.started
            with state.lock:
                state.progress, state.stage = max(state.progress, progress), stage
                state.eta_s = (
                    round(elapsed * (1 - state.progress) / state.progress, 2) if state.progress > 0 else None
                )
            if time.monotonic() - state.last_beat >= self.min_heartbeat_s:
                self._beat(state)
            if state.lost:
                raise LeaseLost(f"lost the lease of {lease.generation_id}")
            if state.cancel:
                raise GenerationCanceled(lease.generation_id)

        try:
            self._execute(lease, state, out_dir, callback)
        finally:
            stop_keepalive.set()
            keepalive.join()
            shutil.rmtree(out_dir, ignore_errors=True)

    def _execute(self, lease: Lease, state: _Run, out_dir: Path, callback) -> None:
        """Run the engine, then report the outcome; the keep-alive renews the lease throughout,
        the upload of the files included."""
        from mutoscope.generate import GenerationCanceled

        try:
            inputs = self.source.fetch_inputs(lease, out_dir / "inputs")
            output = self.engine.run(lease.params, out_dir, callback, inputs)
            if state.lost:
                raise LeaseLost(lease.generation_id)
        except GenerationCanceled:
            return self._report(lease, self.source.canceled, lease)
        except LeaseLost:
            return log.warning(
                "worker %s: lost the lease of %s; dropping it", self.worker_id, lease.generation_id
            )
        except Exception as e:
            log.exception("worker %s: job %s failed", self.worker_id, lease.generation_id)
            code = getattr(e, "code", None) or "engine.error"
            retryable = (
                getattr(e, "retryable", False)
                or isinstance(e, MemoryError)
                or "out of memory" in str(e).lower()
            )
            return self._report(
                lease, self.source.fail, lease, code, f"{type(e).__name__}: {e}"[:2000], retryable
            )
        try:
            self.source.complete(lease, output)
            self.jobs_done += 1
        except LeaseLost:
            log.warning(
                "worker %s: lost the lease of %s before the upload", self.worker_id, lease.generation_id
            )
        except Exception as e:  # the video exists but did not reach the server: another attempt may
            log.exception("worker %s: cannot hand in %s", self.worker_id, lease.generation_id)
            self._report(lease, self.source.fail, lease, "worker.upload_failed", str(e)[:2000], True)

    def _report(self, lease: Lease, call, *args) -> None:
        try:
            call(*args)
        except LeaseLost:
            log.warning("worker %s: lease of %s lost before the report", self.worker_id, lease.generation_id)

    def _beat(self, state: _Run) -> None:
        with state.lock:
            progress, stage, eta_s = state.progress, state.stage, state.eta_s
            state.last_beat = time.monotonic()
        try:
            cancel = self.source.heartbeat(state.lease, progress, stage, eta_s)
        except LeaseLost:
            state.lost = True
            return
        except Exception:  # the server is briefly unreachable: the lease has slack, try again later
            log.warning("worker %s: heartbeat failed", self.worker_id, exc_info=True)
            return
        state.cancel = state.cancel or cancel

    def _keepalive(self, state: _Run, stop: threading.Event) -> None:
        period = max(0.05, state.lease.lease_s / 3)
        while not stop.wait(period):
            if time.monotonic() - state.last_beat >= period:
                self._beat(state)
