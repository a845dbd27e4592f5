"""TLS with client certificates and username/password, configured from [cloud]."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.config import CloudSection
from sync.cloud_store import open_store
from sync.devbroker import Broker
from sync.ingest import Ingest
from sync.mqtt import MqttSettings
from sync.uplink import Uplink
from tests.sync.helpers import LOT, assert_exact_chain, open_filled, wait_for


def _cert(subject: str, key, issuer_name, issuer_key, *, ca: bool, ip: str | None = None):
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    directory.mkdir()
    paths = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lotedge test CA")])
    ca = _cert("lotedge test CA", ca_key, ca_name, ca_key, ca=True)
    for name, ip in (("server", "127.0.0.1"), ("client", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(name, key, ca_name, ca_key, ca=False, ip=ip)
        paths[f"{name}_cert"] = directory / f"{name}.crt"
        paths[f"{name}_key"] = directory / f"{name}.key"
        paths[f"{name}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{name}_key"].write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    paths["ca"] = directory / "ca.crt"
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for p in paths.values():
        p.chmod(0o644)
    return paths


async def test_uplink_over_tls_with_client_cert_and_password(tmp_path):
    pki = make_pki(tmp_path / "pki")
    broker = Broker(tmp_path / "broker", tls={"cafile": pki["ca"], "certfile": pki["server_cert"],
                                              "keyfile": pki["server_key"]},
                    users={"lot-a": "s3cret"})
    broker.start()
    try:
        (tmp_path / "mqtt.pass").write_text("s3cret\n")
        (tmp_path / "mqtt.pass").chmod(0o600)  # a secret file: owner-only or refused
        cloud = CloudSection(enabled=True, mqtt_url=f"mqtts://127.0.0.1:{broker.port}",
                             username="lot-a", password_file=str(tmp_path / "mqtt.pass"),
                             tls_ca_file=str(pki["ca"]), tls_cert_file=str(pki["client_cert"]),
                             tls_key_file=str(pki["client_key"]))
        settings = MqttSettings.from_config(cloud)
        ledger = await open_filled(tmp_path / "l.sqlite3", 300)
        store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
        uplink = Uplink(ledger, settings)
        ingest = Ingest(store, settings, client_id="tls-ingest")
        tasks = [asyncio.create_task(ingest.run()), asyncio.create_task(uplink.run())]
        try:
            await wait_for(lambda: uplink.acked_through == 300, 20, "300 acked over TLS")
        finally:
            for t in tasks:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(t, 10)  # bounded: a stuck teardown must not hang CI
        assert_exact_chain(store.events(LOT), 300)
        await ledger.close()
        store.close()
        # Without the password (or without a client certificate) the broker refuses.
        for bad in (dict(password=None), dict(cert_file=None, key_file=None)):
            fields = {**settings.__dict__, **bad}
            with pytest.raises(aiomqtt.MqttError):
                async with MqttSettings(**fields).client(identifier="intruder", timeout_s=3):
                    pass
    finally:
        broker.stop()
