"""Lane reports from the ledger: per lot-hour entries, exits, revenue, invoices, plate reads.

An event counts in the hour its fact happened (`fact_local`, carried by batched facts such as
plate reads and lane transitions), else in the hour it was written (`ts_local`)."""

from __future__ import annotations

from typing import Any

from appliance.core.money import format_cents
from appliance.ledger import Ledger

HOURLY_SQL = """
SELECT substr(COALESCE(json_extract(payload, '$.fact_local'), ts_local), 1, 13) AS hour,
       SUM(type = 'ticket.issued') AS entries,
       SUM(type IN ('ticket.closed', 'exit.unmatched')) AS exits,
       SUM(type = 'entry.refused') AS refused,
       SUM(CASE WHEN type = 'payment.recorded' AND json_extract(payload, '$.status') = 'captured'
                THEN json_extract(payload, '$.amount_cents') ELSE 0 END) AS revenue_cents,
       SUM(CASE WHEN type = 'payment.recorded' AND json_extract(payload, '$.method') = 'cash'
                THEN json_extract(payload, '$.amount_cents') ELSE 0 END) AS cash_cents,
       SUM(type = 'invoice.created') AS invoices,
       SUM(CASE WHEN type = 'invoice.created' THEN json_extract(payload, '$.amount_cents')
                ELSE 0 END) AS invoiced_cents,
       SUM(type = 'exit.unmatched') AS lost_tickets,
       SUM(type = 'alarm.raised') AS alarms,
       SUM(type = 'lane.plate_read') AS plate_reads,
       ROUND(AVG(CASE WHEN type = 'lane.plate_read' THEN json_extract(payload, '$.read_ms')
                 END), 1) AS read_ms_avg
FROM events WHERE seq > ? GROUP BY hour ORDER BY hour
"""


async def hourly(ledger: Ledger, *, after_seq: int = 0) -> list[dict[str, Any]]:
    """One row per lot-local hour with traffic and money figures."""
    rows = await ledger.fetchall(HOURLY_SQL, (after_seq,))
    return [dict(r) for r in rows]


def format_row(row: dict[str, Any], currency: str) -> str:
    """One human line of the hourly report."""
    return (f"{row['hour'].replace('T', ' ')}:00  in {row['entries']:>4}  out {row['exits']:>4}  "
            f"refused {row['refused']:>3}  revenue {format_cents(row['revenue_cents'], currency):>14}"
            f"  (cash {format_cents(row['cash_cents'], currency)})  invoices {row['invoices']:>3}  "
            f"lost {row['lost_tickets']:>2}  reads {row['plate_reads']:>4}"
            + (f" ({row['read_ms_avg']} ms)" if row["read_ms_avg"] is not None else ""))
