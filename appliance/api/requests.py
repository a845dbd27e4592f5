"""Request helpers shared by every API module: JSON bodies, required fields, error responses."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive

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


MAX_JSON_DEPTH = 32  # the deepest body the API takes is 3 levels


def json_depth(data: Any) -> int:
    """How deeply arrays and objects nest in `data` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) \
            else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json(raw: bytes, *, want_object: bool = False) -> Any:
    """Parse a request body as JSON (InputError when it is not JSON, nests deeper than
    MAX_JSON_DEPTH, or is not an object when `want_object`)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"request body is not JSON: {err}") from err
    except RecursionError:
        raise InputError(f"request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise InputError(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    if want_object and not isinstance(data, dict):
        raise InputError("request body must be a JSON object")
    return data


def int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    """A whole-number query parameter within [low, high] (InputError otherwise)."""
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise InputError(f"{name} must be between {low} and {high}")
    return value


def required_text(text: str | None, what: str) -> str:
    """`text` stripped; InputError naming `what` when it is missing or blank."""
    if text is None or not str(text).strip():
        raise InputError(f"{what} is required")
    return str(text).strip()


def replaying(body: bytes, receive: Receive) -> Receive:
    """An ASGI `receive` that hands `body` over as the whole request body once (middleware
    that read or rewrote it), then defers to the real one (for the disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
