"""What every `lotedge diag` command shares: the typer apps, exit codes, the context
(config, socket, technician), error handling and output."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from appliance.client import ApiError, ServiceUnavailable, SyncServiceClient
from appliance.errors import LotedgeError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_NOT_RUNNING = 3
EXIT_REFUSED = 4
EXIT_SERVICE_RUNNING = 5
EXIT_NOT_AVAILABLE = 6
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILED: "a check failed (ledger does not verify, cloud unreachable, backup bad)",
    EXIT_INPUT: "bad input or configuration (unknown lane, unreadable file, ...)",
    EXIT_NOT_RUNNING: "the service is not running (its API socket does not answer)",
    EXIT_REFUSED: "refused for safety (a vehicle is present, close refused)",
    EXIT_SERVICE_RUNNING: "the command needs the service stopped (it owns the device/database)",
    EXIT_NOT_AVAILABLE: "this build of the service does not provide the data or action",
}

DEFAULT_CONFIG = Path("/etc/lotedge/lot.toml")

_SHARED = {"-c": "--config", "--config": "--config", "--socket": "--socket",
           "--technician": "--technician"}


def hoist_shared_options(args: list[str]) -> list[str]:
    """Move `-c FILE`, `--config FILE`, `--socket PATH` and `--technician NAME` given after
    the diag command (`lotedge diag status -c lot.toml`) to before it, where they belong."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if i > 0 and arg == "--":
            rest += args[i:]
            break
        if i > 0 and name in _SHARED and name.startswith("--") and eq:
            front += [_SHARED[name], value]
        elif i > 0 and arg in _SHARED and i + 1 < len(args):
            front += [_SHARED[arg], args[i + 1]]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


class DiagGroup(TyperGroup):
    """The diag group: its shared options may also follow the command."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        """Parse after moving shared options given after the command to the front."""
        first = next((i for i, a in enumerate(args) if a in self.commands), None)
        if first is not None:
            args = args[:first] + hoist_shared_options(args[first:])
        return super().parse_args(ctx, args)


diag_app = typer.Typer(help="Field technician diagnostics (add --json for scripts). "
                            "-c/--config, --socket and --technician may also follow the "
                            "command.", no_args_is_help=True, cls=DiagGroup)
db_app = typer.Typer(help="Ledger database: verify, online backup, vacuum", no_args_is_help=True)
diag_app.add_typer(db_app, name="db")

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON output")]
LaneArg = Annotated[str, typer.Argument(help="lane id")]


class Refused(LotedgeError, RuntimeError):
    """Refused for safety (exit 4)."""


class ServiceRunning(LotedgeError, RuntimeError):
    """The command needs the service stopped (exit 5)."""


class NotAvailable(LotedgeError, RuntimeError):
    """Not provided by this build (exit 6)."""


class CheckFailed(LotedgeError, RuntimeError):
    """A check ran and failed (exit 1); the report was already printed."""


@dataclass
class DiagContext:
    """Options shared by every diag command."""

    config_path: Path
    socket: Path | None
    technician: str
    timeout_s: float = 5.0
    _cfg: Any = field(default=None, repr=False)

    @property
    def cfg(self):
        """The lot configuration (loaded on first use)."""
        if self._cfg is None:
            from appliance.config import load_config

            self._cfg = load_config(self.config_path)
        return self._cfg

    @property
    def socket_path(self) -> Path:
        """The service API's Unix socket."""
        return self.socket or self.cfg.data_path(self.cfg.api.socket)

    def client(self) -> SyncServiceClient:
        """A client of the running service."""
        return SyncServiceClient(self.socket_path, timeout_s=self.timeout_s, local_admin=True)

    def service_up(self) -> bool:
        """True when the service answers on its socket."""
        if not self.socket_path.exists():
            return False
        client = self.client()
        try:
            client.get("/health")
            return True
        except ServiceUnavailable:
            return False
        finally:
            client.close()

    def require(self) -> SyncServiceClient:
        """A client, or exit 3 when the service is down."""
        if not self.service_up():
            raise ServiceUnavailable(f"service not running at {self.socket_path}")
        return self.client()

    @property
    def attendant(self) -> str:
        """The identity recorded in audited commands."""
        return f"tech:{self.technician}"


@diag_app.callback()
def diag_main(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option("--config", "-c", envvar="LOTEDGE_CONFIG",
                                         help="lot configuration TOML")] = DEFAULT_CONFIG,
    socket_path: Annotated[Path | None, typer.Option(
        "--socket", help="API socket (default: <data_dir>/<api.socket>)")] = None,
    technician: Annotated[str | None, typer.Option(
        envvar="LOTEDGE_TECHNICIAN", help="who is acting (recorded in audit events)")] = None,
) -> None:
    """Diagnostics for the field technician."""
    who = technician or os.environ.get("SUDO_USER") or getpass.getuser()
    ctx.obj = DiagContext(config_path=config, socket=socket_path, technician=who)


def _print_error(json_out: bool, code: int, message: str) -> None:
    if json_out:
        print(json.dumps({"error": message, "exit_code": code}))
    print(f"lotedge diag: error: {message}", file=sys.stderr)


@contextlib.contextmanager
def exit_on_error(json_out: bool) -> Iterator[None]:
    """Map failures to one-line messages and the documented exit codes."""
    try:
        yield
    except ServiceUnavailable as err:
        _print_error(json_out, EXIT_NOT_RUNNING, str(err).split(": [Errno")[0])
        raise typer.Exit(EXIT_NOT_RUNNING) from None
    except ApiError as err:
        code = {409: EXIT_REFUSED, 501: EXIT_NOT_AVAILABLE, 400: EXIT_INPUT,
                404: EXIT_INPUT}.get(err.status, EXIT_FAILED)
        _print_error(json_out, code, str(err))
        raise typer.Exit(code) from None
    except CheckFailed:
        raise typer.Exit(EXIT_FAILED) from None
    except Refused as err:
        _print_error(json_out, EXIT_REFUSED, str(err))
        raise typer.Exit(EXIT_REFUSED) from None
    except ServiceRunning as err:
        _print_error(json_out, EXIT_SERVICE_RUNNING, str(err))
        raise typer.Exit(EXIT_SERVICE_RUNNING) from None
    except NotAvailable as err:
        _print_error(json_out, EXIT_NOT_AVAILABLE, str(err))
        raise typer.Exit(EXIT_NOT_AVAILABLE) from None
    except (LotedgeError, OSError) as err:
        _print_error(json_out, EXIT_INPUT, str(err))
        raise typer.Exit(EXIT_INPUT) from None


def fail(json_out: bool, message: str) -> CheckFailed:
    """Say why a check failed (a line on stderr; with --json the error object) and return the
    exception to raise (exit 1)."""
    _print_error(json_out, EXIT_FAILED, message)
    return CheckFailed(message)


def emit(json_out: bool, data: Any, human: Callable[[Console, Any], None]) -> None:
    """Print `data` as JSON, or through `human` for people."""
    if json_out:
        print(json.dumps(data, default=str))
    else:
        human(Console(highlight=False), data)


def print_pairs(console: Console, pairs: list[tuple[str, Any]]) -> None:
    """Print aligned `key  value` lines."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        console.print(f"{key:<{width}}  {value}")


def audit(d: DiagContext, action: str, detail: dict[str, Any]) -> None:
    """Record a technician action in the ledger (through the service when it runs)."""
    if d.service_up():
        client = d.client()
        try:
            client.post("/diag/audit", {"action": action, "technician": d.technician,
                                        "detail": detail})
        finally:
            client.close()
        return
    db = d.cfg.db_path()
    if not db.exists():
        return

    async def append() -> None:
        from appliance.core.events import NewEvent
        from appliance.ledger import Ledger

        ledger = await Ledger.open(db, lot_id=d.cfg.lot.id, tz=d.cfg.lot.tz)
        try:
            await ledger.append(NewEvent(type=f"diag.{action}",
                                         payload={**detail, "technician": d.technician}))
        finally:
            await ledger.close()

    asyncio.run(append())
