"""Lane reports from the ledger: per lot-hour entries, exits, revenue, invoices."""

from __future__ import annotations

from typing import Any

from appliance.core.money import format_cents
from appliance.ledger import Ledger

HOURLY_SQL = """
SELECT substr(ts_local, 1, 13) AS hour,
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
       SUM(type = 'alarm.raised') AS alarms
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
            f"lost {row['lost_tickets']:>2}")
