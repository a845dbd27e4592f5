"""Versioned schema migrations of the ledger database."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the data model and the append-only event log.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        lot_id TEXT NOT NULL,
        type TEXT NOT NULL,
        ts_utc TEXT NOT NULL,
        ts_local TEXT NOT NULL,
        mono_ns INTEGER NOT NULL,
        payload TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX events_type ON events(type);
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TRIGGER events_delete_only_synced BEFORE DELETE ON events
    WHEN OLD.seq > COALESCE((SELECT CAST(value AS INTEGER) FROM meta
                             WHERE key = 'acked_through'), 0)
    BEGIN SELECT RAISE(ABORT, 'only events acknowledged by the cloud may be pruned'); END;
    CREATE TABLE lots (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, timezone TEXT NOT NULL,
        currency TEXT NOT NULL, mode TEXT NOT NULL
    );
    CREATE TABLE levels (id TEXT PRIMARY KEY, name TEXT NOT NULL, position INTEGER NOT NULL);
    CREATE TABLE capacity (
        level_id TEXT NOT NULL REFERENCES levels(id),
        spot_type TEXT NOT NULL,
        capacity INTEGER NOT NULL CHECK (capacity >= 0),
        occupied INTEGER NOT NULL DEFAULT 0 CHECK (occupied >= 0),
        PRIMARY KEY (level_id, spot_type)
    );
    CREATE TABLE spots (
        id TEXT PRIMARY KEY,
        level_id TEXT NOT NULL REFERENCES levels(id),
        type TEXT NOT NULL,
        distance_cm INTEGER NOT NULL,
        sensor TEXT,
        state TEXT NOT NULL DEFAULT 'AVAILABLE',
        ticket_id TEXT
    );
    CREATE TABLE vehicles (
        plate TEXT PRIMARY KEY,
        vehicle_type TEXT,
        is_ev INTEGER NOT NULL DEFAULT 0,
        flags TEXT NOT NULL DEFAULT '',
        unpaid_invoices INTEGER NOT NULL DEFAULT 0,
        first_seen_utc TEXT,
        last_seen_utc TEXT
    );
    CREATE TABLE tickets (
        id TEXT PRIMARY KEY,
        plate TEXT,
        vehicle_type TEXT NOT NULL,
        is_ev INTEGER NOT NULL DEFAULT 0,
        level_id TEXT NOT NULL,
        spot_type TEXT NOT NULL,
        spot_id TEXT,
        entry_lane TEXT,
        entry_utc TEXT NOT NULL,
        exit_lane TEXT,
        exit_utc TEXT,
        status TEXT NOT NULL,
        rate_multiplier TEXT NOT NULL DEFAULT '1',
        fee_cents INTEGER,
        paid_cents INTEGER NOT NULL DEFAULT 0,
        entry_seq INTEGER NOT NULL,
        exit_seq INTEGER
    );
    CREATE INDEX tickets_open_plate ON tickets(plate) WHERE status = 'OPEN';
    CREATE INDEX tickets_status ON tickets(status);
    CREATE TABLE reservations (
        id TEXT PRIMARY KEY,
        plate TEXT,
        code TEXT,
        spot_type TEXT NOT NULL,
        level_id TEXT,
        spot_id TEXT,
        start_utc TEXT NOT NULL,
        end_utc TEXT NOT NULL,
        status TEXT NOT NULL
    );
    CREATE TABLE payments (
        id TEXT PRIMARY KEY,
        ticket_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        amount_cents INTEGER NOT NULL,
        method TEXT NOT NULL,
        status TEXT NOT NULL,
        processor_token TEXT,
        last4 TEXT,
        brand TEXT,
        offline INTEGER NOT NULL DEFAULT 0,
        ts_utc TEXT NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE TABLE invoices (
        id TEXT PRIMARY KEY,
        ticket_id TEXT,
        plate TEXT,
        amount_cents INTEGER NOT NULL,
        reason TEXT NOT NULL,
        status TEXT NOT NULL,
        ts_utc TEXT NOT NULL,
        seq INTEGER NOT NULL
    );
    """,
]

MIGRATIONS.append(
    # 2: alarms raised by devices, counts, sync and lanes; acknowledged by attendants.
    """
    CREATE TABLE alarms (
        id TEXT PRIMARY KEY,
        code TEXT NOT NULL,
        source TEXT NOT NULL,
        severity TEXT NOT NULL,
        detail TEXT NOT NULL,
        raised_utc TEXT NOT NULL,
        raised_seq INTEGER NOT NULL,
        cleared_utc TEXT,
        acked_by TEXT,
        acked_note TEXT,
        acked_utc TEXT
    );
    CREATE UNIQUE INDEX alarms_active ON alarms(code, source) WHERE cleared_utc IS NULL;
    ALTER TABLE tickets ADD COLUMN override_cents INTEGER;
    ALTER TABLE tickets ADD COLUMN validations TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE tickets ADD COLUMN note TEXT;
    """
)

MIGRATIONS.append(
    # 3: plate lists (permits, prepay-required, blocked), reservation links, payment detail.
    """
    CREATE TABLE plate_lists (
        plate TEXT NOT NULL,
        list TEXT NOT NULL,
        source TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        valid_from_utc TEXT,
        valid_to_utc TEXT,
        PRIMARY KEY (plate, list)
    );
    ALTER TABLE tickets ADD COLUMN reservation_id TEXT;
    ALTER TABLE tickets ADD COLUMN kind TEXT NOT NULL DEFAULT 'walk_in';
    ALTER TABLE tickets ADD COLUMN paid_utc TEXT;
    ALTER TABLE reservations ADD COLUMN created_utc TEXT;
    ALTER TABLE reservations ADD COLUMN ticket_id TEXT;
    ALTER TABLE reservations ADD COLUMN expected_minutes INTEGER;
    CREATE INDEX reservations_window ON reservations(status, start_utc);
    ALTER TABLE payments ADD COLUMN reconciled INTEGER NOT NULL DEFAULT 0;
    """
)

MIGRATIONS.append(
    # 4: what the spot's sensor says, kept apart from the allocation (spots.state/ticket_id).
    """
    ALTER TABLE spots ADD COLUMN sensor_state TEXT NOT NULL DEFAULT 'UNKNOWN';
    ALTER TABLE spots ADD COLUMN sensor_seen_utc TEXT;
    """
)

MIGRATIONS.append(
    # 5: attendants (PIN stored as a salted scrypt hash) and their shifts at the booth.
    """
    CREATE TABLE attendants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        pin_hash TEXT NOT NULL,
        added_utc TEXT NOT NULL,
        added_seq INTEGER NOT NULL
    );
    CREATE TABLE shifts (
        id TEXT PRIMARY KEY,
        attendant_id TEXT NOT NULL,
        opened_utc TEXT NOT NULL,
        opened_seq INTEGER NOT NULL,
        closed_utc TEXT,
        closed_seq INTEGER,
        closed_by TEXT,
        expected_cents INTEGER,
        counted_cents INTEGER,
        difference_cents INTEGER
    );
    CREATE UNIQUE INDEX shifts_open ON shifts(attendant_id) WHERE closed_utc IS NULL;
    """
)

MIGRATIONS.append(
    # 6 (sync): signed cloud bundles as applied, and the events calendar they carry. Their
    # permits and allow/deny lists go to plate_lists (source 'cloud'), reservations to reservations.
    """
    CREATE TABLE bundles (
        version INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL,
        issued_utc TEXT NOT NULL,
        applied_seq INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE calendar_events (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        start_utc TEXT NOT NULL,
        end_utc TEXT NOT NULL
    );
    """
)

MIGRATIONS.append(
    # 7: find the nearest free spot per (level, type) without scanning every spot.
    """
    CREATE INDEX spots_free ON spots(state, level_id, type, distance_cm, id);
    """
)

MIGRATIONS.append(
    # 8: the monotonic clock reading at entry, so fees survive wall-clock steps (NTP).
    """
    ALTER TABLE tickets ADD COLUMN entry_mono_s REAL;
    ALTER TABLE tickets ADD COLUMN clock_epoch TEXT;
    """
)

MIGRATIONS.append(
    # 9: tariffs by content id (tariff.adopted) and the tariff each ticket locked at entry.
    """
    CREATE TABLE tariffs (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        adopted_seq INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    ALTER TABLE tickets ADD COLUMN tariff_id TEXT;
    """
)

MIGRATIONS.append(
    # 10: no gate decision scans a table that grows with history: plate lookups of cars inside
    # (OPEN or PAID; the OPEN-only index could not serve them), a plate's unpaid invoices, and
    # the reservation a closing ticket completes.
    """
    DROP INDEX tickets_open_plate;
    CREATE INDEX tickets_inside_plate ON tickets(plate) WHERE status IN ('OPEN', 'PAID');
    CREATE INDEX invoices_unpaid_plate ON invoices(plate) WHERE status = 'UNPAID';
    CREATE INDEX reservations_ticket ON reservations(ticket_id) WHERE ticket_id IS NOT NULL;
    """
)

MIGRATIONS.append(
    # 11: when a spot's sensor last saw a car: a ticket whose car left its spot unseen by the
    # exit (plate missed) is released only if its spot was occupied after the ticket's entry.
    """
    ALTER TABLE spots ADD COLUMN sensor_occupied_utc TEXT;
    CREATE INDEX tickets_vacated_plate ON tickets(plate) WHERE status = 'VACATED';
    """
)

MIGRATIONS.append(
    # 12: secrets are not facts. PIN hashes move out of the attendants projection into their
    # own table, which is never synced, served or exported (attendant.added events carry only
    # who added whom); failed sign-ins are counted per source and attendant, across restarts.
    """
    CREATE TABLE credentials (
        attendant_id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        updated_utc TEXT NOT NULL
    );
    INSERT INTO credentials(attendant_id, secret_hash, updated_utc)
        SELECT id, pin_hash, added_utc FROM attendants;
    ALTER TABLE attendants DROP COLUMN pin_hash;
    CREATE TABLE signin_failures (
        source TEXT NOT NULL,
        attendant_id TEXT NOT NULL,
        failures INTEGER NOT NULL,
        last_utc TEXT NOT NULL,
        PRIMARY KEY (source, attendant_id)
    );
    """
)
