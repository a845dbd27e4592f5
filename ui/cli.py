"""`lotedge attendant` (the booth UI) and `lotedge attendants add/list` (staff admin)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from appliance.errors import InputError, LotedgeError
from appliance.host.secrets import read_secret_file

app = typer.Typer()
staff_app = typer.Typer(help="Attendants who may sign in at the booth", no_args_is_help=True)
app.add_typer(staff_app, name="attendants")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="lot configuration TOML")]
SocketOpt = Annotated[Path | None, typer.Option("--socket", help="service API socket")]


def _socket(config: Path | None, socket: Path | None) -> tuple[Path, object | None]:
    if socket is not None:
        return socket, None
    if config is None:
        raise InputError("give --config FILE or --socket PATH")
    from appliance.config import load_config

    cfg = load_config(config)
    return cfg.data_path(cfg.api.socket), cfg


@app.command("attendant")
def attendant(config: ConfigOpt = None, socket: SocketOpt = None,
              poll_s: Annotated[float, typer.Option(help="refresh period")] = 1.0,
              demo: Annotated[bool, typer.Option(help="a recorded state, no service (try it: "
                                                      "ann/1111, sue/2222)")] = False) -> None:
    """Open the attendant terminal UI against the running service."""
    from appliance.client import ServiceClient
    from ui.app import AttendantApp

    if demo:
        from ui.fixed import fixed_transport

        AttendantApp(ServiceClient("demo", transport=fixed_transport()), poll_s=poll_s).run()
        return
    path, cfg = _socket(config, socket)
    tz = cfg.lot.timezone if cfg is not None else None
    AttendantApp(ServiceClient(path), poll_s=poll_s, timezone=tz).run()


def _read_pin(pin_file: Path | None) -> str:
    if pin_file is not None:  # refused unless only its owner can read it
        return str(read_secret_file(pin_file, key="--pin-file"))
    return typer.prompt("PIN (6-12 digits, or a passphrase of 12+ characters)", hide_input=True, confirmation_prompt=True)


@staff_app.command("add")
def attendants_add(
    attendant_id: Annotated[str, typer.Argument(metavar="ID", help="sign-in id, e.g. ann")],
    name: Annotated[str, typer.Option(help="full name")],
    role: Annotated[str, typer.Option(help="attendant, supervisor or technician")] = "attendant",
    pin_file: Annotated[Path | None, typer.Option(help="read the PIN from this file")] = None,
    config: ConfigOpt = None, socket: SocketOpt = None,
) -> None:
    """Add an attendant (event attendant.added): through the service if it runs, else the ledger."""
    from appliance.client import ServiceUnavailable, SyncServiceClient
    from appliance.lot.attendants import check_pin

    path, cfg = _socket(config, socket)
    pin = check_pin(_read_pin(pin_file))
    body = {"id": attendant_id, "name": name, "role": role, "pin": pin}
    client = SyncServiceClient(path, local_admin=True)
    try:
        added = client.post("/attendants", body)
        how = "through the running service"
    except ServiceUnavailable:
        if cfg is None:
            raise LotedgeError(f"service not running at {path}; give --config to write "
                               "the ledger directly") from None
        added = asyncio.run(_add_offline(cfg, body))
        how = "into the ledger (service not running)"
    finally:
        client.close()
    print(f"added {added['id']} ({added['name']}, {added['role']}) {how}")


@staff_app.command("set-pin")
def attendants_set_pin(
    attendant_id: Annotated[str, typer.Argument(metavar="ID", help="sign-in id, e.g. ann")],
    pin_file: Annotated[Path | None, typer.Option(help="read the PIN from this file")] = None,
    config: ConfigOpt = None, socket: SocketOpt = None,
) -> None:
    """Give an attendant a new PIN (after a forgotten PIN, or a restored backup: backups hold
    no PINs): through the service if it runs, else the ledger. Needs root or the service user."""
    from appliance.client import ServiceUnavailable, SyncServiceClient
    from appliance.lot.attendants import check_pin

    path, cfg = _socket(config, socket)
    pin = check_pin(_read_pin(pin_file))
    client = SyncServiceClient(path, local_admin=True)
    try:
        client.post(f"/attendants/{attendant_id}/pin", {"pin": pin})
        how = "through the running service"
    except ServiceUnavailable:
        if cfg is None:
            raise LotedgeError(f"service not running at {path}; give --config to write "
                               "the ledger directly") from None
        asyncio.run(_offline(cfg, "set_pin", attendant_id=attendant_id, pin=pin))
        how = "into the ledger (service not running)"
    finally:
        client.close()
    print(f"new PIN set for {attendant_id} {how}")


def local_admin(db: Path) -> str:
    """The OS user writing the ledger directly: root or the ledger's owner, else a one-line
    refusal (anyone else could otherwise enrol themselves as a technician)."""
    import os
    import pwd

    owner = (db if db.exists() else db.parent).stat().st_uid if db.parent.exists() else 0
    if os.geteuid() not in (0, owner):
        raise LotedgeError(f"only root or the ledger's owner may enrol attendants directly "
                           f"(run with sudo, or as the service user of {db})")
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid{os.geteuid()}"


async def _offline(cfg, action: str, **kwargs) -> dict:
    from appliance.ledger import Ledger
    from appliance.lot import attendants

    by = f"local:{local_admin(cfg.db_path())}"
    ledger = await Ledger.open(cfg.db_path(), lot_id=cfg.lot.id, tz=cfg.lot.tz)
    try:
        return await getattr(attendants, action)(ledger, by=by, **kwargs)
    finally:
        await ledger.close()


async def _add_offline(cfg, body: dict) -> dict:
    return await _offline(cfg, "add_attendant", attendant_id=body["id"], name=body["name"],
                          role=body["role"], pin=body["pin"])


@staff_app.command("list")
def attendants_list(config: ConfigOpt = None, socket: SocketOpt = None) -> None:
    """List attendants known to the running service."""
    from appliance.client import SyncServiceClient

    path, _ = _socket(config, socket)
    client = SyncServiceClient(path)
    try:
        for row in client.get("/attendants"):
            print(f"{row['id']:<16} {row['role']:<11} {row['name']}")
    finally:
        client.close()
