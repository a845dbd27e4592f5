"""Resending to a cloud that lost data: lower the acknowledged position on purpose, audited.

`acked_through` otherwise only ever rises (`sync.uplink.write_acked_through`). When the cloud
lost events (a restored backup), `resync_from(ledger, seq)` lowers it to `seq - 1` in one ledger
transaction that also appends a `sync.resync` event (who asked, why, from where to where) and
raises the sync epoch (meta `sync_epoch`). The uplink picks the new epoch up (also in a running
service) and resends from `seq`; signed acks carry the epoch of the batch they answer, so an
ack from before the resync (a retained or replayed one) no longer counts.

Lowering acked_through only shrinks what retention may prune (the ledger's delete trigger reads
it), so "nothing unacknowledged is purged" holds throughout. Events already pruned cannot be
resent: a `seq` below the oldest event still held is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.core.events import NewEvent
from appliance.errors import InputError
from appliance.ledger import Ledger

RESYNC_EVENT = "sync.resync"


@dataclass(frozen=True, kw_only=True)
class ResyncResult:
    """What a resync changed."""

    seq: int  # the seq of the sync.resync event
    from_seq: int
    acked_before: int
    acked_after: int
    epoch: int


async def resync_from(ledger: Ledger, from_seq: int, *, by: str, reason: str = "") -> ResyncResult:
    """Lower acked_through to `from_seq - 1` and raise the sync epoch, as one audited event."""
    if from_seq < 1:
        raise InputError(f"--from: must be 1 or more (got {from_seq})")
    async with ledger.transaction() as tx:
        row = await tx.fetchone("SELECT MIN(seq) AS first, MAX(seq) AS last FROM events")
        first, last = (row["first"], row["last"]) if row else (None, None)
        acked_row = await tx.fetchone("SELECT value FROM meta WHERE key = 'acked_through'")
        acked = int(acked_row["value"]) if acked_row else 0
        epoch_row = await tx.fetchone("SELECT value FROM meta WHERE key = 'sync_epoch'")
        epoch = int(epoch_row["value"]) if epoch_row else 0
        owner = await tx.fetchone("SELECT lot_id FROM events ORDER BY seq DESC LIMIT 1")
        if owner is not None and owner["lot_id"] != ledger.lot_id:
            raise InputError(f"--lot-id: this ledger belongs to lot {owner['lot_id']!r}, not "
                             f"{ledger.lot_id!r}")
        if last is None or from_seq > last:
            raise InputError(f"--from: seq {from_seq} is past this ledger's last event "
                             f"({last or 0})")
        if from_seq < first:
            raise InputError(f"--from: events before seq {first} were pruned here and cannot be "
                             f"resent (use --from {first} or later)")
        if from_seq > acked + 1:
            raise InputError(f"--from: seq {from_seq} was never acknowledged (acked_through "
                             f"{acked}); the uplink sends it anyway")
        new_acked = from_seq - 1
        event = await tx.append(NewEvent(type=RESYNC_EVENT, payload={
            "from_seq": from_seq, "acked_before": acked, "acked_after": new_acked,
            "epoch": epoch + 1, "by": by, "reason": reason}))
        await tx.execute("INSERT INTO meta(key, value) VALUES ('acked_through', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(new_acked),))
        await tx.execute("INSERT INTO meta(key, value) VALUES ('sync_epoch', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(epoch + 1),))
    return ResyncResult(seq=event.seq, from_seq=from_seq, acked_before=acked,
                        acked_after=new_acked, epoch=epoch + 1)
