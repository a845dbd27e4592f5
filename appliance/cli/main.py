"""`lotedge` command line: run the appliance, verify the ledger, and the other tools."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from appliance.cli import helpfmt  # noqa: F401  (flags show no <bool> in --help)
from appliance.cli.db import db_app
from appliance.cli.diag import diag_app
from appliance.cli.diag.common import DEFAULT_CONFIG
from appliance.cli.lot import counts_app, reservations_app
from appliance.cli.quote import quote
from appliance.cli.release import release_app, rollback, upgrade
from appliance.errors import ConfigError, DeviceError, LedgerError, ListenError, LotedgeError
from drivers.cli import drivers_app
from lpr.cli import lpr_app
from sync.cli import cloud_app
from ui import cli as ui_cli

app = typer.Typer(help="lotedge: offline-first parking-lot edge appliance",
                  pretty_exceptions_enable=False, no_args_is_help=True)
config_app = typer.Typer(help="Configuration tools", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

app.add_typer(reservations_app, name="reservations")
app.add_typer(counts_app, name="counts")
app.command("quote")(quote)
app.add_typer(diag_app, name="diag")
app.add_typer(ui_cli.app)  # `attendant` (booth UI) and `attendants` (staff admin)
app.add_typer(drivers_app, name="drivers")
app.add_typer(lpr_app, name="lpr")
app.add_typer(cloud_app, name="cloud")
app.add_typer(release_app, name="release")
app.command("upgrade")(upgrade)
app.command("rollback")(rollback)

ConfigOpt = Annotated[Path, typer.Option(
    "--config", "-c", envvar="LOTEDGE_CONFIG",
    help="lot configuration TOML (else $LOTEDGE_CONFIG, else /etc/lotedge/lot.toml)")]


def _show_version(value: bool) -> None:
    if value:
        from appliance import __version__

        print(f"lotedge {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="print the installed version and exit")] = False) -> None:
    """lotedge: offline-first parking-lot edge appliance"""


def _load(config: Path):
    from appliance.config import load_config

    return load_config(config)


@app.command()
def run(
    config: ConfigOpt = DEFAULT_CONFIG,
    simulate: Annotated[bool, typer.Option(
        "--simulate", help="simulated hardware and a traffic generator (the demo lot)")] = False,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="with --simulate: start an empty lot; the old data directory is moved "
        "aside to <data_dir>.old-<UTC time>, nothing is deleted")] = False,
    data_dir: Annotated[Path | None, typer.Option(
        help="use this data directory instead of \\[storage] data_dir")] = None,
    duration: Annotated[float | None, typer.Option(
        help="stop after this many real seconds (not lot time)", min=0)] = None,
    max_cars: Annotated[int | None, typer.Option(
        help="with --simulate: stop after this many cars have arrived", min=1)] = None,
    display: Annotated[bool, typer.Option(
        "--display/--no-display",
        help="live availability and lanes view (only on a terminal)")] = True,
) -> None:
    """Run the appliance (with --simulate: on a simulated lot)."""
    import dataclasses

    if "INVOCATION_ID" not in os.environ:  # under systemd, UMask= and StateDirectoryMode= rule
        os.umask(0o077)  # the ledger, its directory and every file the service makes: owner only

    cfg = _load(config)
    if data_dir is not None:
        cfg = dataclasses.replace(
            cfg, storage=dataclasses.replace(cfg.storage, data_dir=str(data_dir)))
    if fresh and not simulate:
        raise ConfigError("--fresh works only with --simulate: a real lot's ledger is never "
                          "moved by `run`")
    if simulate:
        _refuse_real_ledger(cfg.db_path())
    if fresh:
        moved = _move_aside(cfg.db_path().parent)
        if moved:
            print(f"fresh lot: the old data directory is now {moved}")
    if simulate:
        where = cfg.db_path().parent
        print(f"continuing the simulated lot in {where} (--fresh, or make run FRESH=1, starts "
              "an empty one)" if cfg.db_path().exists() else
              f"a new simulated lot in {where}", flush=True)  # stdout: errors alone on stderr
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_escpos)
    from appliance.host.journal import use_journal_if_under_systemd

    use_journal_if_under_systemd(cfg.lot.id)  # structured journald entries under systemd
    asyncio.run(_run(cfg, simulate=simulate, duration=duration, max_cars=max_cars,
                     display=display and sys.stdout.isatty()))


def _quiet_escpos(record: logging.LogRecord) -> bool:
    """python-escpos logs every printer open and close at INFO on the root logger: drop those."""
    return record.levelno >= logging.WARNING or "escpos" not in record.pathname


def _refuse_real_ledger(path: Path) -> None:
    """Stop `run --simulate` before it writes simulated cars into a ledger of real traffic."""
    if not path.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro",
                                                uri=True)) as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                            "name = 'events'").fetchone() is None:
                return  # created but never written
            real = conn.execute(
                "SELECT seq FROM events WHERE type = 'service.started' AND "
                "COALESCE(json_extract(payload, '$.simulate'), 0) = 0 LIMIT 1").fetchone()
    except sqlite3.Error as err:
        raise LedgerError(f"cannot read ledger {path}: {err}") from err
    if real is not None:
        raise ConfigError(f"--simulate: the ledger {path} holds real traffic (seq {real[0]} is "
                          "a start without --simulate); give the simulation its own "
                          "--data-dir")


def _move_aside(data_dir: Path) -> Path | None:
    """Rename a data directory to `<name>.old-<UTC time>` (never over another); None if absent."""
    from datetime import UTC, datetime

    if not data_dir.exists() or not any(data_dir.iterdir()):
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = data_dir.with_name(f"{data_dir.name}.old-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = data_dir.with_name(f"{data_dir.name}.old-{stamp}-{n}")
    data_dir.rename(target)
    return target


async def _run(cfg, *, simulate: bool, duration: float | None, max_cars: int | None,
               display: bool) -> None:
    from appliance.clock import SimClock, SystemClock
    from appliance.service import Service, systemd_notifier
    from appliance.simulate import TrafficGenerator

    clock = SimClock(speed=cfg.simulation.speed) if simulate else SystemClock()
    service = Service(cfg, simulate=simulate, clock=clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
    except BaseException:  # release what did open (ledger thread, cameras, pins) and say why
        with contextlib.suppress(Exception):
            await service.stop()
        raise
    extra = [lambda: systemd_notifier(service)]  # READY/WATCHDOG/STOPPING when under systemd
    traffic = None
    if simulate:
        traffic = TrafficGenerator(service, cfg.simulation, clock, max_cars=max_cars)

        async def drive() -> None:
            await traffic.run()
            if max_cars is not None:
                stop.set()

        extra.append(drive)
    if duration is not None:
        loop.call_later(duration, stop.set)
    if display:
        extra.append(lambda: _display(service, traffic, clock, simulate=simulate))
    else:
        extra.append(lambda: _report(service, traffic, clock))
    try:
        await service.run(stop, extra=extra)
    finally:
        await service.stop()
    if traffic is not None:
        s = traffic.stats
        print(f"simulation: parked_from_before={s.resumed} "
              f"arrived={s.arrived} balked={s.balked} entered={s.entered} "
              f"refused={s.refused} exited={s.exited} trapped={s.trapped} "
              f"inside={len(s.inside)} permit={s.permit_holders} reservations={s.reservations} "
              f"paid_on_foot={s.paid_on_foot} backed_out={s.backed_out} tailgates={s.tailgates}")


@app.command("report")
def report_cmd(config: ConfigOpt = DEFAULT_CONFIG,
               json_out: Annotated[bool, typer.Option(
                   "--json", help="one JSON array of the rows")] = False,
               offline_payments: Annotated[bool, typer.Option(
                   help="list offline card approvals: pending, settled, unable to collect")
               ] = False) -> None:
    """Per lot-hour: entries, exits, refusals, revenue (card + cash), invoices, lost tickets."""
    from appliance.ledger import Ledger
    from appliance.lot.payments import offline_report
    from appliance.lot.report import format_row, hourly

    cfg = _load(config)
    if not cfg.db_path().exists():
        raise LotedgeError(f"no ledger at {cfg.db_path()}")

    async def read():
        ledger = await Ledger.open(cfg.db_path(), lot_id=cfg.lot.id, tz=cfg.lot.tz)
        try:
            return await (offline_report(ledger) if offline_payments else hourly(ledger))
        finally:
            await ledger.close()

    rows = asyncio.run(read())
    if offline_payments and not json_out:
        for row in rows:
            print(f"{row['when_utc']}  {row['ticket_id']}  {row['plate'] or '-':<10} "
                  f"{row['amount_cents']:>7} cents  {row['state']}")
        return
    if json_out:
        print(json.dumps(rows))
        return
    for row in rows:
        print(format_row(row, cfg.lot.currency))


async def _display(service, traffic, clock, *, simulate: bool = False) -> None:
    import time

    from rich.live import Live

    from appliance.cli.display import live_view

    started = time.monotonic()
    speed = service.cfg.simulation.speed if simulate else 1

    def render():
        s = traffic.stats if traffic else None
        tz = service.cfg.lot.tz
        real_s = int(time.monotonic() - started)
        status = [f"lot time {clock.now().astimezone(tz):%a %H:%M}"
                  + (f" ({speed:g}x real time)" if simulate else "")
                  + f", running {real_s // 60}:{real_s % 60:02d}. Ctrl-C stops."]
        if s is not None:
            status.append(f"cars: entered {s.entered}, exited {s.exited}, refused {s.refused}, "
                          f"inside {len(s.inside)}, trapped {s.trapped}")
            if s.resumed:
                where = service.cfg.db_path().parent
                with contextlib.suppress(ValueError):
                    where = where.relative_to(Path.cwd())
                status.append(f"continuing the lot in {where}/: {s.resumed} cars parked "
                              "from before")
                status.append("(make run FRESH=1 or `lotedge run --fresh` starts an empty lot)")
        return live_view(service.availability, title=f"lotedge {service.cfg.lot.id}",
                         lanes=[c.snapshot() for c in service.lanes.values()],
                         status=status, tz=tz)

    with Live(render(), refresh_per_second=2) as live:
        while True:
            await asyncio.sleep(0.5)
            live.update(render())


async def _report(service, traffic, clock) -> None:
    from appliance.lot.report import format_row, hourly

    log = logging.getLogger("lotedge.report")
    start_seq = await service.ledger.last_seq()
    reported: set[str] = set()
    while True:
        await asyncio.sleep(5)
        av = service.availability
        s = traffic.stats if traffic else None
        log.info("availability free=%d/%d %s%s", av.free, av.capacity,
                 " ".join(f"{k}:{v['free']}" for k, v in av.by_level().items()),
                 f" entered={s.entered} exited={s.exited} refused={s.refused} "
                 f"trapped={s.trapped}" if s else "")
        rows = await hourly(service.ledger, after_seq=start_seq)
        for row in rows[:-1]:  # completed lot hours
            if row["hour"] not in reported:
                reported.add(row["hour"])
                log.info("hour %s", format_row(row, service.cfg.lot.currency))


@config_app.command("check")
def config_check(path: Annotated[Path, typer.Argument(help="lot configuration TOML")]) -> None:
    """Validate a configuration file."""
    cfg = _load(path)
    print(f"ok: lot {cfg.lot.id}: {len(cfg.levels)} levels, {len(cfg.spots)} spots, "
          f"{len(cfg.lanes)} lanes, mode {cfg.lot.mode}")


# Exit codes (docs/hardware.md "Exit codes"): which part stopped the start or the command.
EXIT_CONFIG = 2  # configuration, bad input, and any other lotedge error
EXIT_LEDGER = 3  # the ledger cannot be opened, read or verified (missing, damaged, newer schema)
EXIT_GPIO = 4  # the GPIO backend ([hardware] pin_factory) is missing or cannot open the chip
EXIT_SERIAL = 5  # a serial port is missing, not permitted or busy
EXIT_CAMERA = 6  # a camera or its plate-reading models cannot be set up
EXIT_LISTEN = 7  # the API socket or HTTP port is in use
_DEVICE_EXITS = {"gpio_backend": EXIT_GPIO, "port_open": EXIT_SERIAL, "port_busy": EXIT_SERIAL,
                 "camera": EXIT_CAMERA}


def exit_code(err: BaseException) -> int:
    """The documented exit code of an error that stopped a command."""
    if isinstance(err, LedgerError | sqlite3.DatabaseError):
        return EXIT_LEDGER
    if isinstance(err, DeviceError):
        return _DEVICE_EXITS.get(err.code, EXIT_CONFIG)
    if isinstance(err, ListenError):
        return EXIT_LISTEN
    return EXIT_CONFIG


def _exit(code: int, *, before: frozenset[threading.Thread] = frozenset()) -> None:
    """Exit now, even if a failed open left a library thread behind (an aiosqlite connection
    whose open failed half-way keeps a non-daemon thread, and the interpreter would wait on it
    for ever: systemd would sit out its start timeout instead of seeing the exit code). Only
    threads this command started count: `main()` called in a process that had threads of its
    own (a test runner) must not take that process down."""
    if any(t is not threading.main_thread() and not t.daemon and t.is_alive()
           and t not in before for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main() -> None:
    """Console entry point: one-line errors with the documented exit codes (`exit_code`)."""
    before = frozenset(threading.enumerate())
    try:
        app()
    except (LotedgeError, sqlite3.DatabaseError) as err:
        # sqlite's own error reaches here when a damaged ledger opens but fails a later read
        text = " ".join(str(err).split()) or type(err).__name__
        if isinstance(err, sqlite3.DatabaseError):
            text = f"ledger: {text}"
        print(f"lotedge: error: {text}", file=sys.stderr)
        _exit(exit_code(err), before=before)
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            print("interrupted", file=sys.stderr)
        _exit(130, before=before)
    except SystemExit as done:  # a subcommand's own exit (typer.Exit): never wait on a leak
        code = done.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
        _exit(code if isinstance(code, int) else (0 if code is None else 1), before=before)


if __name__ == "__main__":
    main()
