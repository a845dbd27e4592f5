"""What the lot's commands, checks and API handlers use of a running appliance.

The wiring (`appliance.service`) builds one `LotRuntime` once the ledger is open and hands it
out; nothing below the wiring sees the whole service (as a Home Assistant integration hands its
actions `entry.runtime_data`, not the hass object).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.clock import Clock
from appliance.config import LotConfig
from appliance.ledger import Ledger
from appliance.lot.lanes import LaneController
from appliance.lot.late import LateRecords
from appliance.lot.tariffs import TariffBook
from drivers.payment import PaymentTerminal

if TYPE_CHECKING:
    from appliance.lot.printing import Paper
    from drivers.scanner import Scanners


@dataclass(frozen=True, kw_only=True)
class LotRuntime:
    """The narrow parts of a running lot.

    Args:
        cfg: the validated lot configuration.
        ledger: the open ledger.
        clock: the time source (a SimClock in simulation).
        tariffs: the tariffs new tickets lock, followed from the ledger.
        lanes: lane controllers by lane id (the wiring's own dict: filled at start, emptied at stop).
        terminal: the payment terminal.
        late: what a full disk kept out of the ledger, written late.
        data_dir: the directory of the ledger and the other data files.
        db_path: the ledger file.
        open_tickets_at_start: OPEN or PAID tickets when the service started (loop drift base).
        paper: the lot's printers and ticket key (None: nothing prints).
        scanners: the ticket scanners by lane (None: none).
    """

    cfg: LotConfig
    ledger: Ledger
    clock: Clock
    tariffs: TariffBook
    lanes: Mapping[str, LaneController]
    terminal: PaymentTerminal
    late: LateRecords
    data_dir: Path
    db_path: Path
    open_tickets_at_start: int = 0
    paper: Paper | None = None
    scanners: Scanners | None = None
