"""`lotedge cloud ...`: the reference cloud (ingest, bundle server), bundle keys and signing,
and a standalone uplink that drains a ledger."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from appliance.errors import LotedgeError

cloud_app = typer.Typer(help="Cloud sync: reference ingest, bundle server, keys, uplink",
                        no_args_is_help=True)


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


async def _until_signal(main) -> None:
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


@cloud_app.command("ingest")
def ingest(
    mqtt: Annotated[str, typer.Option("--mqtt", help="broker, mqtt://host:port")],
    db: Annotated[str, typer.Option("--db", help="sqlite:///PATH (default backend) or "
                                                 "postgresql://...")] = "sqlite:///cloud.sqlite3",
    schema: Annotated[str, typer.Option(help="PostgreSQL schema for the tables")] = "lotedge",
    client_id: Annotated[str, typer.Option(help="persistent session id; keep it stable")] =
        "lotedge-ingest-1",
    group: Annotated[str, typer.Option(help="shared subscription group ('' for none)")] =
        "lotedge-ingest",
    ca_file: Annotated[str | None, typer.Option(help="TLS: CA certificate (mqtts://)")] = None,
    cert_file: Annotated[str | None, typer.Option(help="TLS: client certificate")] = None,
    key_file: Annotated[str | None, typer.Option(help="TLS: client key")] = None,
    backoff_max_s: Annotated[float, typer.Option(
        help="ceiling of the jittered reconnect backoff after the broker goes away", min=0.1)] = 30.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Reference cloud ingest: store event batches idempotently and publish acks.

    Credentials go in the URL: mqtt://user:password@host:port (mqtts:// for TLS).
    """
    from sync.cloud_store import open_store
    from sync.ingest import Ingest
    from sync.mqtt import MqttSettings

    _logging(verbose)
    store = open_store(db, schema=schema)
    settings = MqttSettings.from_url(mqtt, ca_file=ca_file, cert_file=cert_file,
                                     key_file=key_file)
    worker = Ingest(store, settings, client_id=client_id, group=group or None,
                    backoff_max_s=backoff_max_s)
    try:
        asyncio.run(_until_signal(worker.run()))
    finally:
        store.close()


@cloud_app.command("serve-bundles")
def serve_bundles(
    bundle_dir: Annotated[Path, typer.Option("--dir", help="holds LOT_ID/*.json signed bundles")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
) -> None:
    """Serve GET /v1/lots/{lot_id}/bundle?since=VERSION from a directory of signed bundles."""
    from sync.cloud_api import BundleServer

    _logging(False)
    if not bundle_dir.is_dir():
        raise LotedgeError(f"--dir: {bundle_dir} is not a directory")
    server = BundleServer(bundle_dir, host=host, port=port)

    async def main() -> None:
        await server.start()
        print(f"serving bundles from {bundle_dir} on http://{host}:{server.port}", flush=True)
        await server.serve_forever()

    asyncio.run(_until_signal(main()))


@cloud_app.command("keygen")
def keygen(
    private_out: Annotated[Path, typer.Option("--private", help="write the private key here")],
) -> None:
    """Make an Ed25519 key pair: private key to a file (mode 600), public key printed."""
    from sync.bundle import generate_keypair

    if private_out.exists():
        raise LotedgeError(f"--private: {private_out} exists; refusing to overwrite a key")
    private, public = generate_keypair()
    private_out.touch(mode=0o600)
    private_out.write_text(private + "\n")
    print(f"public key (cloud.bundle_public_key): {public}")


@cloud_app.command("sign-bundle")
def sign_bundle_cmd(
    bundle: Annotated[Path, typer.Argument(help="unsigned bundle JSON")],
    key: Annotated[Path, typer.Option("--key", help="private key file from keygen")],
    out: Annotated[Path, typer.Option("--out", "-o", help="signed bundle file")],
) -> None:
    """Sign a bundle (canonical JSON, Ed25519) after validating its records."""
    from sync.bundle import public_key_of, sign_bundle, verify_bundle

    try:
        body = json.loads(bundle.read_text(encoding="utf-8"))
        private = key.read_text(encoding="utf-8").strip()
    except (OSError, ValueError) as err:
        raise LotedgeError(f"cannot read input: {err}") from err
    if not isinstance(body, dict):
        raise LotedgeError("bundle: must be a JSON object")
    try:
        signed = sign_bundle(body, private)
    except ValueError as err:
        raise LotedgeError(f"--key: {err}") from err
    # Validate the records exactly as an appliance will, before anything is written.
    verify_bundle(signed, public_key_b64=public_key_of(private), lot_id=str(body.get("lot_id")))
    out.write_text(json.dumps(signed, indent=1, sort_keys=True) + "\n")
    print(f"signed bundle v{body.get('version')} for lot {body.get('lot_id')} -> {out}")


@cloud_app.command("uplink")
def uplink_cmd(
    db: Annotated[Path, typer.Option("--db", help="the appliance's ledger file")],
    lot_id: Annotated[str, typer.Option("--lot-id")],
    mqtt: Annotated[str, typer.Option("--mqtt", help="broker, mqtt://host:port")],
    batch_max_events: Annotated[int, typer.Option()] = 500,
    ack_timeout_s: Annotated[float, typer.Option()] = 30.0,
    exit_when_synced: Annotated[bool, typer.Option(help="stop once everything is acked")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Drain a ledger to the cloud (what the service's uplink task does, standalone)."""
    from zoneinfo import ZoneInfo

    from appliance.ledger import Ledger
    from sync.mqtt import MqttSettings
    from sync.uplink import Uplink

    _logging(verbose)
    if not db.exists():
        raise LotedgeError(f"--db: no ledger at {db}")

    async def main() -> None:
        ledger = await Ledger.open(db, lot_id=lot_id, tz=ZoneInfo("UTC"))
        uplink = Uplink(ledger, MqttSettings.from_url(mqtt), batch_max_events=batch_max_events,
                        ack_timeout_s=ack_timeout_s)
        task = asyncio.create_task(uplink.run())
        try:
            while exit_when_synced:
                await asyncio.sleep(0.2)
                if uplink.acked_through >= await ledger.last_seq():
                    break
            else:
                await task
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await ledger.close()
        print(f"acked_through {uplink.acked_through}", flush=True)

    asyncio.run(_until_signal(main()))
