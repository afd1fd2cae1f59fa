"""Errors as RFC 9457 problem details (`application/problem+json`), each with a dotted `code`.

Every error the API sends has this shape, whatever raised it: an `ApiError` from our code, a
request that fails validation (unknown fields included), an unknown route or method, or a bug:

    {"type": "urn:mutoscope:problem:credits.insufficient", "title": "Not enough credits",
     "status": 402, "detail": "...", "code": "credits.insufficient", "instance": "/v1/generations",
     ...extension members such as "required" and "balance"}
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("mutoscope.serve")

PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    """Raise anywhere in a request to answer with a problem; `extra` adds extension members."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extra = extra


def not_found(what: str, ident: str) -> ApiError:
    """Missing and other users' objects answer alike, so ids cannot be probed."""
    return ApiError(404, f"{what}.not_found", f"no {what} {ident!r}")


def problem(request: Request | None, e: ApiError) -> JSONResponse:
    body = {
        "type": f"urn:mutoscope:problem:{e.code}",
        "title": e.title,
        "status": e.status,
        "detail": e.detail,
        "code": e.code,
        **({"instance": request.url.path} if request is not None else {}),
        **e.extra,
    }
    return JSONResponse(body, status_code=e.status, headers=e.headers, media_type=PROBLEM_JSON)


def _validation_code(errors: list[dict]) -> str:
    types = {err.get("type") for err in errors}
    if "extra_forbidden" in types:
        return "request.field.unknown"
    if "missing" in types:
        return "request.field.missing"
    if "json_invalid" in types:
        return "request.json.invalid"
    return "request.field.invalid"


def install(app: FastAPI) -> None:
    """Route every error through `problem()`."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return problem(request, e)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
            for err in e.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"] if part != "body") or "request"
        code = _validation_code(errors)
        return problem(request, ApiError(422, code, f"{where}: {first['msg']}", errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        phrase = HTTPStatus(e.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        detail = e.detail if isinstance(e.detail, str) else HTTPStatus(e.status_code).phrase
        return problem(request, ApiError(e.status_code, f"http.{phrase}", detail, headers=e.headers))

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(request, ApiError(500, "server.error", "internal error; it has been logged"))
