"""`lotedge diag camera`: a plate read or a frame from a lane camera."""

from __future__ import annotations

import base64
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.diag.common import (
    DiagContext,
    JsonOpt,
    LaneArg,
    NotAvailable,
    audit,
    diag_app,
    emit,
    exit_on_error,
)
from appliance.errors import LotedgeError

# --- camera ---------------------------------------------------------------------------------


class CameraAction(StrEnum):
    """What `diag camera` does."""

    read = "read"
    snapshot = "snapshot"


def grab_frame(source: str) -> bytes:
    """One JPEG frame from a camera URL, device or file, opened directly with OpenCV."""
    import cv2

    target: str | int = int(source) if source.isdigit() else source
    if isinstance(target, str) and target.startswith("/dev/video") and target[10:].isdigit():
        target = int(target[10:])
    capture = cv2.VideoCapture(target)
    try:
        if not capture.isOpened():
            raise NotAvailable(f"cannot open camera {source!r}")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise NotAvailable(f"camera {source!r} gave no frame")
        ok, encoded = cv2.imencode(".jpg", frame)
        if not ok:
            raise NotAvailable(f"cannot encode a frame of camera {source!r}")
        return encoded.tobytes()
    finally:
        capture.release()


@diag_app.command()
def camera(
    ctx: typer.Context,
    lane: LaneArg,
    action: Annotated[CameraAction, typer.Argument(help="read: run LPR; snapshot: save a frame")],
    out: Annotated[Path | None, typer.Argument(help="snapshot: output JPEG file")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Read the plate at a lane now, or save a frame of its camera."""
    d: DiagContext = ctx.obj
    with exit_on_error(json_out):
        if action == CameraAction.read:
            client = d.require()
            data = client.post(f"/diag/lanes/{lane}/camera/read")
            client.close()
            emit(json_out, data, lambda c, x: c.print(
                f"lane {x['lane']}: plate {x['plate'] or 'NO READ'} confidence "
                f"{x['confidence']:.2f} type {x['vehicle_type'] or '-'} in {x['read_ms']} ms "
                f"({x['source']})"))
            return
        if out is None:
            raise LotedgeError("camera snapshot needs an output file: camera LANE snapshot OUT.jpg")
        if d.service_up():
            client = d.client()
            jpeg = base64.b64decode(client.get(f"/diag/lanes/{lane}/camera/snapshot")["jpeg_base64"])
            client.close()
            via = "service"
        else:
            try:
                source = d.cfg.lane(lane).camera
            except KeyError:
                raise LotedgeError(f"no lane {lane!r}") from None
            if source == "sim":
                raise NotAvailable(f"lane {lane} has the simulated camera (no frames)")
            jpeg = grab_frame(source)
            via = "device"
        out.write_bytes(jpeg)
        os.chmod(out, 0o600)  # a frame shows plates: personal data
        audit(d, "camera.snapshot", {"lane": lane, "bytes": len(jpeg), "via": via})
        data = {"lane": lane, "out": str(out), "bytes": len(jpeg), "via": via}
        emit(json_out, data, lambda c, x: c.print(
            f"saved {x['bytes']} bytes to {x['out']} (via the {x['via']})"))
