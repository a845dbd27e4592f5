"""The attendant app: tabs for lanes, availability, tickets, alarms and the shift.

Holds only screen state: it polls snapshots from the service API and sends the service's
commands; every fee, allocation and permission decision is the service's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from appliance.client import ApiError, ServiceClient, ServiceUnavailable
from appliance.core.roles import least_role_for
from ui.labels import badge, money, short_time
from ui.screens.activity import ActivityView
from ui.screens.alarms import AlarmsView
from ui.screens.availability import AvailabilityView
from ui.screens.lanes import LanesView
from ui.screens.shift import ShiftView
from ui.screens.signin import SignInScreen
from ui.screens.tickets import TicketsView

TABS = ("lanes", "availability", "tickets", "alarms", "shift", "activity")


def tariff_text(health: dict[str, Any] | None) -> str:
    """The hourly rate new tickets lock, from /health ("3.00/h"; "9.00/h cloud" from a bundle)."""
    tariff = (health or {}).get("tariff")
    if not isinstance(tariff, dict) or not isinstance(tariff.get("hourly_cents"), int):
        return ""
    return f"{money(tariff['hourly_cents'])}/h" + (
        " cloud" if tariff.get("source") == "bundle" else "")


def cloud_state(health: dict[str, Any] | None) -> tuple[str, str]:
    """(mode word, sync text) from /health: ONLINE/OFFLINE and the backlog, LOCAL if no sync."""
    if health is None:
        return "SERVICE DOWN", "cloud: n/a"
    sync = health.get("sync")
    if not isinstance(sync, dict):  # no uplink reported: the lot runs on its own
        return "LOCAL", "cloud: n/a"
    online = bool(sync.get("online", sync.get("connected", False)))
    backlog = sync.get("backlog", sync.get("pending"))
    return ("ONLINE" if online else "OFFLINE"), (
        f"sync backlog {backlog if backlog is not None else '?'}")


class AttendantApp(App[None]):
    """The booth terminal.

    Args:
        client: the service API client (Unix socket by default).
        poll_s: how often snapshots are refreshed.
        sign_in: ask for a sign-in at start (tests may pre-sign the client).
        timezone: lot time zone for the status bar clock (UTC if None).
    """

    CSS_PATH = "attendant.tcss"
    ENABLE_COMMAND_PALETTE = False
    TITLE = "lotedge attendant"
    # The tab keys are written on the tabs themselves: the footer keeps its room for the
    # keys of the view in front (it must fit 80 columns).
    BINDINGS = [
        Binding("1", "tab('lanes')", "Lanes", show=False),
        Binding("2", "tab('availability')", "Avail", show=False),
        Binding("3", "tab('tickets')", "Tickets", show=False),
        Binding("4", "tab('alarms')", "Alarms", show=False),
        Binding("5", "tab('shift')", "Shift", show=False),
        Binding("6", "tab('activity')", "Activity", show=False),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, client: ServiceClient, *, poll_s: float = 1.0, sign_in: bool = True,
                 timezone: str | None = None):
        super().__init__()
        self.client = client
        self.poll_s = poll_s
        self.ask_sign_in = sign_in
        self.tz = ZoneInfo(timezone) if timezone else None  # else the service's lot zone
        self.session: dict[str, Any] | None = None
        self.shift: dict[str, Any] | None = None
        self.health: dict[str, Any] | None = None
        self.last_error = ""
        self.polls = 0
        self._polling = False
        self._uptime_s: float | None = None  # a drop means the service restarted
        self.restarted = False

    def compose(self) -> ComposeResult:
        """Banner, tabs, status bar, key help."""
        yield Static("", id="banner")
        with TabbedContent(id="tabs", initial="lanes"):
            with TabPane("1 Lanes", id="lanes"):
                yield LanesView(id="lanes-view")
            with TabPane("2 Avail", id="availability"):
                yield AvailabilityView(id="availability-view")
            with TabPane("3 Tickets", id="tickets"):
                yield TicketsView(id="tickets-view")
            with TabPane("4 Alarms", id="alarms"):
                yield AlarmsView(id="alarms-view")
            with TabPane("5 Shift", id="shift"):
                yield ShiftView(id="shift-view")
            with TabPane("6 Activity", id="activity"):
                yield ActivityView(id="activity-view")
        yield Static("", id="status")
        yield Footer(compact=True)

    async def on_mount(self) -> None:
        """First snapshot, periodic refresh, and the sign-in prompt."""
        self._main = self.screen
        self._banner = self.query_one("#banner", Static)
        self._status_bar = self.query_one("#status", Static)
        self._views = {cls: self.query_one(cls) for cls in (
            LanesView, AvailabilityView, AlarmsView, ShiftView, TicketsView, ActivityView)}
        await self.poll()
        self.set_interval(self.poll_s, self.poll)
        if self.ask_sign_in and self.session is None:
            self.push_screen(SignInScreen(), self.signed_in)

    # -- session ---------------------------------------------------------------------------

    def can(self, permission: str) -> bool:
        """Whether the signed-in role may do `permission` (the service checks again)."""
        return self.session is not None and permission in self.session.get("permissions", ())

    def explain_refusal(self, what: str, permission: str) -> None:
        """Say why a key does nothing for the signed-in role (instead of ignoring it)."""
        if self.session is None:
            self.notify(f"{what}: sign in first", severity="warning", timeout=4)
            return
        role = least_role_for(permission)
        self.notify(f"{what}: needs a {role.value if role else 'technician'}; "
                    f"{self.session['attendant']} is {self.session['role']}",
                    severity="warning", timeout=5)

    def when(self, iso: str | None) -> str:
        """A service timestamp as `MM-DD HH:MM` in the lot's local time."""
        return short_time(iso, self.lot_tz)

    def service_now(self) -> datetime:
        """The service's clock at the last poll, in the lot's zone (the booth's "now")."""
        stamp = (self.health or {}).get("time_utc")
        when = datetime.fromisoformat(stamp) if stamp else datetime.now().astimezone()
        return when.astimezone(self.lot_tz) if self.lot_tz is not None else when

    @property
    def lot_tz(self) -> ZoneInfo | None:
        """The lot's time zone: the configured one, else the one the service reports."""
        if self.tz is not None:
            return self.tz
        name = (self.health or {}).get("timezone")
        try:
            return ZoneInfo(name) if name else None
        except (KeyError, ValueError):
            return None

    async def signed_in(self, session: dict[str, Any] | None) -> None:
        """Use a new session for every request."""
        if session is None:
            return
        self.session = session
        self.client.set_session(session.get("token"))
        self.notify(f"signed in: {session['name']} ({session['role']})", timeout=3)
        self.refresh_bindings()
        await self.poll()
        self._main.query_one("#lanes-table", DataTable).focus()

    async def end_session(self, path: str, body: dict[str, Any]) -> Any:
        """POST a command that ends this session (sign-out, shift close): the session is
        dropped first, so no poll meanwhile takes its end for an expiry ("session ended")."""
        ending, self.session = self.session, None
        if ending is not None:
            body = {**body, "attendant": ending["attendant"]}
        try:
            result = await self.client.post(path, body)
        except (ApiError, ServiceUnavailable) as err:
            if not (isinstance(err, ApiError) and err.status == 401):  # gone already: fine
                self.session = ending
                self.last_error = str(err)
                self.notify(str(err), severity="error", timeout=6)
                return None
            result = {}
        self.last_error = ""
        self.signed_out()
        return result

    def signed_out(self, reason: str = "") -> None:
        """Forget the session and ask for a sign-in again (`reason` shown on the form); the
        dialogs of the ended session are closed: their commands would go out unsigned."""
        self.session = None
        self.shift = None
        self.client.set_session(None)
        self.refresh_bindings()
        self._status()
        while len(self.screen_stack) > 1 and not isinstance(self.screen, SignInScreen):
            self.pop_screen()
        if not isinstance(self.screen, SignInScreen):
            self.push_screen(SignInScreen(reason=reason), self.signed_in)

    # -- talking to the service ------------------------------------------------------------

    async def fetch(self, path: str, *, quiet: bool = False, **params: Any) -> Any:
        """GET from the service; None (and a notice unless quiet) if it fails."""
        try:
            return await self.client.get(path, **params)
        except (ApiError, ServiceUnavailable) as err:
            self._failed(err, quiet=quiet)
            return None

    async def command(self, path: str, body: dict[str, Any], *, quiet: bool = False) -> Any:
        """POST a command as the signed-in attendant; None if refused (reason in last_error)."""
        if self.session is not None:
            body = {**body, "attendant": self.session["attendant"]}
        try:
            result = await self.client.post(path, body)
        except (ApiError, ServiceUnavailable) as err:
            self._failed(err, quiet=quiet)
            return None
        self.last_error = ""
        await self.poll()
        return result

    def _failed(self, err: Exception, *, quiet: bool) -> None:
        self.last_error = str(err)
        if isinstance(err, ApiError) and err.status == 401 and self.session is not None:
            why = ("the service restarted (sessions end with it): sign in again"
                   if self.restarted else f"session ended: {err}")
            self.restarted = False
            self.notify(why, severity="warning")
            self.signed_out(why)
            return
        if isinstance(err, ServiceUnavailable):
            self._set_down(str(err))
        if not quiet:
            self.notify(str(err), severity="error", timeout=6)

    def _set_down(self, why: str) -> None:
        self.health = None
        banner = self._banner
        banner.update(Text(f" SERVICE DOWN - retrying every {self.poll_s:g} s: {why} ",
                           style="bold white on red"))
        banner.display = True
        self._status()

    async def poll(self) -> None:
        """Refresh every view from the service's snapshots (never raises)."""
        if self._polling:
            return
        self._polling = True
        try:
            health = await self.client.get("/health")
            uptime = health.get("uptime_s")
            if isinstance(uptime, (int, float)):
                if self._uptime_s is not None and uptime < self._uptime_s:
                    self.restarted = True
                self._uptime_s = uptime
            availability = await self.client.get("/availability")
            alarms_view = self._views[AlarmsView]
            alarms = await self.client.get("/alarms", **({"all": "1"} if alarms_view.show_all
                                                          else {}))
            active = alarms if not alarms_view.show_all else [
                a for a in alarms if not a.get("cleared_utc")]
            sensors = None
            try:
                sensors = await self.client.get("/availability/sensors")
            except ApiError:
                pass  # a service without per-spot sensor states
            shift = activity = None
            if self.session is not None:
                try:
                    shift = await self.client.get("/shift")
                    activity = await self.client.get("/activity", limit=50)
                except ApiError as err:
                    if err.status == 401 and self.session is not None:
                        self._failed(err, quiet=True)
        except ServiceUnavailable as err:
            self._set_down(str(err))
            return
        except ApiError as err:
            self.last_error = str(err)
            if err.status >= 500:
                self._set_down(f"service error: {err}")
            return
        finally:
            self._polling = False
        if not health.get("ok", True):
            self._set_down("service is starting or stopping (ledger not open)")
            return
        self.polls += 1
        self.health = health
        self.shift = shift
        try:
            await self._redraw(health, availability, active, sensors, alarms, shift, activity)
        except NoMatches:  # the app closed its widgets while the poll waited (quitting)
            return

    async def _redraw(self, health, availability, active, sensors, alarms, shift,
                      activity) -> None:
        """Every view from one poll's snapshots."""
        alarms_view = self._views[AlarmsView]
        self._banner.display = False
        self._views[LanesView].show(health.get("lanes", []))
        self._views[AvailabilityView].show(availability, active, sensors)
        alarms_view.show(alarms)
        self._views[ShiftView].show(self.session, shift)
        self._views[ActivityView].show(activity)
        self._status()
        tickets = self._views[TicketsView]
        if self._main.query_one(TabbedContent).active == "tickets":
            if self.session is not None:
                await tickets.check_scanner()
            if tickets.ticket is not None:
                await tickets.load(tickets.ticket["id"], quiet=True)  # the fee keeps running

    # -- status bar and navigation ---------------------------------------------------------

    def _status(self) -> None:
        mode, sync = cloud_state(self.health)
        text = Text()
        text.append_text(badge(mode))
        text.append(f" {sync} ")
        health = self.health or {}
        if health:
            text.append(f"| {health.get('lot_id', '?')} ")
            if health.get("simulate"):
                text.append("SIM ", style="bold")
            rate = tariff_text(health)
            if rate:
                text.append(f"| {rate} ")
            stamp = health.get("time_utc")
            if stamp:
                when = datetime.fromisoformat(stamp)
                if self.lot_tz is not None:
                    when = when.astimezone(self.lot_tz)
                text.append(f"| {when:%H:%M:%S} {when.tzname()} ")
        who = self.session
        text.append(f"| {who['attendant']} ({who['role']})" if who else "| not signed in")
        self._status_bar.update(text)
        for cls in ("-online", "-offline", "-down"):
            self._main.remove_class(cls)
        self._main.add_class({"ONLINE": "-online", "OFFLINE": "-offline", "LOCAL": "-offline"}.get(mode, "-down"))

    def action_tab(self, tab: str) -> None:
        """Switch to a tab and focus its table."""
        self._main.query_one(TabbedContent).active = tab
        target = {"lanes": "#lanes-table", "availability": "#avail-table",
                  "tickets": "#ticket-search", "alarms": "#alarms-table",
                  "activity": "#activity-table"}.get(tab)
        if target:
            self._main.query_one(target).focus()
        else:
            self._main.query_one("#shift-view").focus()
