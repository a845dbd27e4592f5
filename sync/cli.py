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
    lot_keys: Annotated[Path | None, typer.Option(
        "--lot-keys", help="directory of LOT_ID.pub files (each lot's public key from "
                           "`lotedge cloud keygen`); batches must be signed by them")] = None,
    ack_key_file: Annotated[Path | None, typer.Option(
        "--ack-key-file", help="the cloud's private key (mode 600) acks are signed with")] = None,
    username: Annotated[str | None, typer.Option(help="broker user name")] = None,
    password_file: Annotated[Path | None, typer.Option(
        "--password-file", help="file (mode 600) holding the broker password")] = None,
    group_max_batches: Annotated[int, typer.Option(
        help="most waiting batches stored in one database transaction", min=1)] = 16,
    pace_target_s: Annotated[float, typer.Option(
        help="the wait a lot's batch should see here; the pace hint's window aims at it",
        min=0.1)] = 10.0,
    seq_chunk: Annotated[int, typer.Option(
        help="PostgreSQL: events per seq partition of a lot (the unit retention drops)",
        min=1)] = 1_000_000,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Reference cloud ingest: verify and store event batches idempotently, publish signed acks.

    Give --lot-keys and --ack-key-file together; without both the old unsigned protocol is
    spoken (a warning says so). Broker credentials: --username and --password-file.
    """
    from appliance.host.secrets import read_secret_file
    from sync.cloud_store import open_store
    from sync.ingest import Ingest
    from sync.mqtt import MqttSettings
    from sync.signing import LotKeys, load_private_key

    _logging(verbose)
    if (lot_keys is None) != (ack_key_file is None):
        raise LotedgeError("--lot-keys and --ack-key-file go together (verify batches, sign acks)")
    keys = LotKeys(lot_keys) if lot_keys is not None else None
    ack_key = (load_private_key(ack_key_file, key="--ack-key-file")
               if ack_key_file is not None else None)
    password = (str(read_secret_file(password_file, key="--password-file"))
                if password_file is not None else None)
    settings = MqttSettings.from_url(mqtt, ca_file=ca_file, cert_file=cert_file,
                                     key_file=key_file, username=username, password=password)
    store = open_store(db, schema=schema, seq_chunk=seq_chunk)
    worker = Ingest(store, settings, client_id=client_id, group=group or None,
                    backoff_max_s=backoff_max_s, lot_keys=keys, ack_key=ack_key,
                    group_max_batches=group_max_batches, pace_target_s=pace_target_s)
    try:
        asyncio.run(_until_signal(worker.run()))
    finally:
        store.close()


@cloud_app.command("serve-bundles")
def serve_bundles(
    bundle_dir: Annotated[Path, typer.Option("--dir", help="holds LOT_ID/*.json signed bundles")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on")] = 8080,
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
    private_out: Annotated[Path, typer.Option("--out", "--private",
                                              help="write the private key here (mode 600)")],
    public_out: Annotated[Path | None, typer.Option(
        "--public-out", help="also write the public key to this file (e.g. LOT_ID.pub)")] = None,
) -> None:
    """Make an Ed25519 key pair: private key to a new file (mode 600), public key printed.

    A lot's key (`\\[cloud] signing_key_file`): register the public key with the cloud as
    LOT_ID.pub in the ingest's --lot-keys directory. The cloud's ack key (ingest
    --ack-key-file) or bundle key: its public key is `\\[cloud] ack_public_key` or
    `bundle_public_key` on the lots.
    """
    import os

    from sync.bundle import generate_keypair

    private, public = generate_keypair()
    try:
        fd = os.open(private_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise LotedgeError(f"--out: {private_out} exists; refusing to overwrite a key") from None
    except OSError as err:
        raise LotedgeError(f"--out: cannot create {private_out}: {err.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(private + "\n")
    if public_out is not None:
        public_out.write_text(public + "\n")
    print(f"private key written to {private_out} (mode 600); register the public key below "
          "with the cloud (lot key) or put it in the lots' config (cloud key)")
    print(f"public key: {public}")


@cloud_app.command("sign-bundle")
def sign_bundle_cmd(
    bundle: Annotated[Path, typer.Argument(help="unsigned bundle JSON")],
    key: Annotated[Path, typer.Option("--key", help="private key file from keygen")],
    out: Annotated[Path, typer.Option("--out", "-o", help="signed bundle file")],
    valid_days: Annotated[float, typer.Option(
        help="set expires_utc this many days after issued_utc when the bundle has none",
        min=0.01)] = 30.0,
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
    if "expires_utc" not in body and isinstance(body.get("issued_utc"), str):
        from datetime import datetime, timedelta

        try:
            issued = datetime.fromisoformat(body["issued_utc"])
        except ValueError as err:
            raise LotedgeError(f"bundle: issued_utc: {err}") from err
        body["expires_utc"] = (issued + timedelta(days=valid_days)).isoformat()
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
    lot_id: Annotated[str, typer.Option("--lot-id", help="the lot's id (\\[lot] id)")],
    mqtt: Annotated[str, typer.Option("--mqtt", help="broker, mqtt://host:port")],
    batch_max_events: Annotated[int, typer.Option(help="most events in one batch")] = 500,
    ack_timeout_s: Annotated[float, typer.Option(
        help="seconds without ack progress before a resend")] = 30.0,
    signing_key_file: Annotated[Path | None, typer.Option(
        help="this lot's private key (mode 600): sign batches")] = None,
    ack_public_key: Annotated[str | None, typer.Option(
        help="the cloud's ack public key (base64 or a file): verify acks")] = None,
    exit_when_synced: Annotated[bool, typer.Option(help="stop once everything is acked")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Drain a ledger to the cloud (what the service's uplink task does, standalone)."""
    from zoneinfo import ZoneInfo

    from appliance.ledger import Ledger
    from sync.mqtt import MqttSettings
    from sync.signing import load_private_key, load_public_key
    from sync.uplink import Uplink

    _logging(verbose)
    if not db.exists():
        raise LotedgeError(f"--db: no ledger at {db}")
    if (signing_key_file is None) != (ack_public_key is None):
        raise LotedgeError("--signing-key-file and --ack-public-key go together")
    signing = (load_private_key(signing_key_file, key="--signing-key-file")
               if signing_key_file is not None else None)
    ack_key = (load_public_key(ack_public_key, key="--ack-public-key")
               if ack_public_key is not None else None)

    async def main() -> None:
        ledger = await Ledger.open(db, lot_id=lot_id, tz=ZoneInfo("UTC"))
        uplink = Uplink(ledger, MqttSettings.from_url(mqtt), batch_max_events=batch_max_events,
                        ack_timeout_s=ack_timeout_s, signing_key=signing, ack_key=ack_key)
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


@cloud_app.command("resync")
def resync_cmd(
    db: Annotated[Path, typer.Option("--db", help="the appliance's ledger file")],
    lot_id: Annotated[str, typer.Option("--lot-id", help="the lot's id (\\[lot] id)")],
    from_seq: Annotated[int, typer.Option("--from", help="resend events from this seq on")],
    by: Annotated[str, typer.Option(help="who asks (recorded in the sync.resync event)")] =
        "cli",
    reason: Annotated[str, typer.Option(help="why (recorded)")] = "cloud lost data",
) -> None:
    """Resend from SEQ after the cloud lost data (e.g. restored a backup).

    Lowers the acknowledged position to SEQ-1 as an audited `sync.resync` ledger event and
    starts a new sync epoch; a running service's uplink picks it up within a second. Events
    below the oldest one still held (pruned) cannot be resent.
    """
    from zoneinfo import ZoneInfo

    from appliance.ledger import Ledger
    from sync.resync import resync_from

    if not db.exists():
        raise LotedgeError(f"--db: no ledger at {db}")

    async def main() -> None:
        ledger = await Ledger.open(db, lot_id=lot_id, tz=ZoneInfo("UTC"))
        try:
            result = await resync_from(ledger, from_seq, by=by, reason=reason)
        finally:
            await ledger.close()
        print(f"resync: acked_through {result.acked_before} -> {result.acked_after}, epoch "
              f"{result.epoch}; recorded as seq {result.seq}; the uplink resends from seq "
              f"{result.from_seq}")

    asyncio.run(main())
