"""Request helpers shared by every API module: JSON bodies, required fields, error responses."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from appliance.errors import InputError


def error_response(status: int, message: str) -> JSONResponse:
    """A JSON error answer: `{"error": message}` with `status`."""
    return JSONResponse({"error": message}, status_code=status)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body ({} when empty); InputError when it is not one."""
    raw = await request.body()
    if not raw:
        return {}
    return parse_json(raw, want_object=True)


def parse_json(raw: bytes, *, want_object: bool = False) -> Any:
    """Parse a request body as JSON (InputError when it is not JSON, or not an object)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"request body is not JSON: {err}") from err
    if want_object and not isinstance(data, dict):
        raise InputError("request body must be a JSON object")
    return data


def required_text(text: str | None, what: str) -> str:
    """`text` stripped; InputError naming `what` when it is missing or blank."""
    if text is None or not str(text).strip():
        raise InputError(f"{what} is required")
    return str(text).strip()
