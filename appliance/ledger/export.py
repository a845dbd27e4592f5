"""What leaves the appliance in a backup: the ledger without its secrets.

Credentials and failed-sign-in counters are dropped, and the PIN hashes that events written by
older versions carried are redacted in place (`core.events.SECRET_FIELDS`); the chain still
verifies, a redacted event being taken on its stored hash. Freed pages are wiped (secure_delete,
then VACUUM), so the bytes are gone from the file, not only from its tables. A restored backup
holds no PINs: attendants get new ones with `lotedge attendants set-pin`.
"""

from __future__ import annotations

import json
import sqlite3

from appliance.core.events import SECRET_FIELDS, canonical_json, redact_payload

SECRET_TABLES = ("credentials", "signin_failures")


def scrub_secrets(conn: sqlite3.Connection) -> int:
    """Remove secrets from a ledger copy (never the live ledger); returns events redacted."""
    conn.execute("PRAGMA secure_delete = ON")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table in SECRET_TABLES:
        if table in tables:
            conn.execute(f"DELETE FROM {table}")
    marks = ",".join("?" * len(SECRET_FIELDS))
    changed = []
    for seq, event_type, payload in conn.execute(
            f"SELECT seq, type, payload FROM events WHERE type IN ({marks})", list(SECRET_FIELDS)):
        data = json.loads(payload)
        redacted = redact_payload(event_type, data)
        if redacted is not data and redacted != data:
            changed.append((canonical_json(redacted), seq))
    if changed:
        trigger = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND "
                               "name = 'events_no_update'").fetchone()
        conn.execute("DROP TRIGGER IF EXISTS events_no_update")
        conn.executemany("UPDATE events SET payload = ? WHERE seq = ?", changed)
        if trigger is not None:
            conn.execute(trigger[0])
    conn.commit()
    conn.execute("VACUUM")
    return len(changed)
