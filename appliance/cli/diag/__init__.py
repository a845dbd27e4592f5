"""`lotedge diag ...`: the field technician's tools.

Commands that touch hardware go through the running service's API (one owner per GPIO pin and
serial port); with the service stopped, `serial ... sniff` and `camera ... snapshot` open the
device directly. Every command takes `--json` (one JSON document, or JSON lines for
`loops --watch`) for scripts. Exit codes are listed in `EXIT_CODES` and the README.
"""

from appliance.cli.diag import bundle, camera, db, serial, service, sync  # noqa: F401  (they register)
from appliance.cli.diag.common import EXIT_CODES, diag_app

__all__ = ["EXIT_CODES", "diag_app"]
