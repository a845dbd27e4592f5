"""Lot configuration: one TOML file, validated once at start-up into frozen values.

Errors name the key and the file line: `lot.toml:42: lanes[1].arming_loop_pin: ...`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, TypeAdapter, ValidationError

from appliance.core.layout import (
    MAX_BUS_ADDRESS,
    MAX_LOT_SPOTS,
    LaneDef,
    LevelDef,
    SpotDef,
    SpotRange,
)
from appliance.core.occupancy import OccupancySettings
from appliance.core.register_maps import PRESETS, RegisterMap
from appliance.core.tariff import Tariff
from appliance.core.types import AllocationStrategy, LaneDirection, LotMode
from appliance.errors import ConfigError
from lpr.regions import BUILTIN_REGIONS, RegionFormat, region_by_code

_FORBID = {"extra": "forbid"}


@dataclass(frozen=True, kw_only=True)
class LotSection:
    """Identity and policy of the lot."""

    __pydantic_config__ = _FORBID

    id: str
    """The lot's id: 1-64 letters, digits, '-' or '_'. It names the lot in the ledger, in MQTT topics
    (lotedge/{id}/...) and in bundles.
    """
    name: str = ""
    """The lot's name, shown on quotes, receipts and in the attendant UI."""
    timezone: str = "UTC"
    """IANA time zone of the lot (e.g. America/New_York): lot-local times (bands, early bird, reports)
    are in it; nothing depends on the machine's own zone.
    """
    currency: str = "USD"
    """ISO 4217 three-letter currency code of all amounts (USD, EUR, ...)."""
    mode: LotMode = LotMode.COUNTER
    """counter: count capacity per level and spot type; per_spot: also assign a spot to each ticket
    (needs [[spots]] or [[spot_ranges]]).
    """
    allocation: AllocationStrategy = AllocationStrategy.NEAREST
    """How a walk-in is placed: nearest (shortest distance to the entrance), spread (least occupied
    level first), preserve_larger (exact type first, then the next larger) or reservation_aware
    (nearest, after holding back what upcoming reservations need).
    """

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.id):
            raise ValueError("id: must be 1-64 letters, digits, '-' or '_' (it is used in topics)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError) as err:  # OSError: name too long
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from err
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValueError("currency: must be a three-letter ISO code such as USD")

    @property
    def tz(self) -> ZoneInfo:
        """The lot's time zone."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, kw_only=True)
class HardwareSection:
    """Which backends drive the devices."""

    __pydantic_config__ = _FORBID

    # lgpio: Pi 5 (and any Pi); native: gpiozero's own, Pi 1-4 only; auto: what the board has
    pin_factory: Literal["auto", "mock", "lgpio", "rpigpio", "native"] = "mock"
    """The GPIO backend: lgpio (Pi 5, and any Pi), rpigpio, native (gpiozero's own, Pi 1-4 only), auto
    (what the board has) or mock (no hardware: simulation and tests).
    """


@dataclass(frozen=True, kw_only=True)
class CloudSection:
    """Cloud endpoints; with `enabled = false` the appliance runs fully offline."""

    __pydantic_config__ = _FORBID

    enabled: bool = False
    """Sync with the cloud (event uplink over MQTT, signed bundles over HTTP); false: the appliance
    runs fully offline.
    """
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    """The broker: mqtt://host:port, or mqtts://host:port for TLS."""
    api_url: str | None = None
    """Base URL of the cloud API that serves signed bundles (GET {api_url}/v1/lots/{lot_id}/bundle);
    none: no bundles are fetched. Needs bundle_public_key.
    """
    username: str | None = None
    """Broker user name (the broker ACL expects the lot id)."""
    password_file: str | None = None
    """File (owner-only) holding the broker password."""
    tls_ca_file: str | None = None
    """CA certificate(s) to verify the broker's TLS certificate (mqtts://); none: the system's CAs.
    """
    tls_cert_file: str | None = None
    """Client certificate for TLS client authentication (give tls_key_file too)."""
    tls_key_file: str | None = None
    """Private key of tls_cert_file (owner-only)."""
    batch_max_events: int = 500
    """Most events in one uplink batch (1-100,000)."""
    batch_max_bytes: int = 256 * 1024
    """Largest uplink batch in bytes (at least 4096; one event always fits)."""
    max_inflight_batches: int = 8
    """Batches published ahead of the cloud's acknowledgement."""
    ack_timeout_s: float = 30.0
    """Seconds the uplink waits for acknowledgement progress before its first round trips are
    measured (each session starts with it); then the timeout is SRTT + 4 RTTVAR (at least 2 s),
    backed off on each resend, and lengthened by the cloud's pace hint. A timeout resends only the
    oldest unacknowledged batch.
    """
    backoff_max_s: float = 60.0
    """Longest wait between reconnect attempts (exponential backoff with full jitter)."""
    bundle_public_key: str | None = None
    """The cloud's Ed25519 bundle key: base64 of the raw 32 bytes, or a file holding it. Required with
    api_url: bundles are signed.
    """
    bundle_poll_interval_s: float = 300.0
    """Seconds between bundle fetches (a retained notice on lotedge/{lot_id}/bundle also triggers one
    at once).
    """
    bundle_stale_after_h: float | None = None  # newest bundle older than this: bundle_stale alarm
    """Raise the bundle_stale alarm when the newest applied bundle was issued longer ago than this
    many hours; none: never.
    """
    signing_key_file: str | None = None  # this lot's Ed25519 key (`lotedge cloud keygen`)
    """This lot's Ed25519 private key (owner-only; `lotedge cloud keygen`): batches are sealed with
    it. Give ack_public_key too.
    """
    ack_public_key: str | None = None  # the cloud's ack key (base64, or a file holding it)
    """The cloud's Ed25519 ack key (base64, or a file holding it): acknowledgements count only when
    their seal verifies. Give signing_key_file too.
    """
    retention_max_bytes: int = 2 * 1024**3
    """Local storage budget in bytes (ledger pages in use plus images under the data directory);
    synced events and then images are pruned to stay under it.
    """
    retention_max_age_days: int = 90
    """Synced events older than this many days are pruned (unsynced events are never deleted)."""
    retention_alarm_ratio: float = 0.9
    """Share of retention_max_bytes above which pruning starts and, if unsynced events still fill it,
    the storage.budget alarm is raised (between 0 and 1).
    """
    retention_prune_images: bool = True
    """Whether pruning may delete images (plate evidence) when synced events are not enough."""
    offline_alarm_s: float = 600.0
    """Seconds the broker may be unreachable (sync_offline), the cloud silent with events waiting
    (sync_stalled) or bundle fetches failing (cloud_api_unreachable) before the alarm is raised.
    """

    def __post_init__(self) -> None:
        if not re.fullmatch(r"mqtts?://[^/\s]+(:\d+)?/?", self.mqtt_url):
            raise ValueError("mqtt_url: must look like mqtt://host:port or mqtts://host:port")
        if not 1 <= self.batch_max_events <= 100_000:
            raise ValueError("batch_max_events: must be between 1 and 100000")
        if self.batch_max_bytes < 4096:
            raise ValueError("batch_max_bytes: must be at least 4096")
        if self.max_inflight_batches < 1:
            raise ValueError("max_inflight_batches: must be at least 1")
        for name in ("ack_timeout_s", "backoff_max_s", "bundle_poll_interval_s",
                     "offline_alarm_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        if self.retention_max_bytes < 1024**2:
            raise ValueError("retention_max_bytes: must be at least 1 MiB")
        if self.retention_max_age_days < 1:
            raise ValueError("retention_max_age_days: must be at least 1")
        if not 0 < self.retention_alarm_ratio < 1:
            raise ValueError("retention_alarm_ratio: must be between 0 and 1")
        if self.api_url and not self.bundle_public_key:
            raise ValueError("bundle_public_key: required when api_url is set (bundles are signed)")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file: give tls_cert_file and tls_key_file together")
        if self.signing_key_file and not self.ack_public_key:
            raise ValueError("ack_public_key: required when signing_key_file is set (acks must "
                             "be verified too)")
        if self.ack_public_key and not self.signing_key_file:
            raise ValueError("signing_key_file: required when ack_public_key is set (batches "
                             "must be signed too)")
        if self.bundle_stale_after_h is not None and self.bundle_stale_after_h <= 0:
            raise ValueError("bundle_stale_after_h: must be positive")


@dataclass(frozen=True, kw_only=True)
class StorageSection:
    """Where the ledger and files live."""

    __pydantic_config__ = _FORBID

    data_dir: str = "var"
    """Directory of the ledger, the API socket and token, evidence images and backups; relative paths
    are relative to the working directory.
    """
    db_file: str = "ledger.sqlite3"
    """The ledger's file name in data_dir."""
    min_free_bytes: int = 256 * 1024**2  # below this free space on the data disk: an alarm
    """Free space on the data disk below which the critical disk_low alarm is raised (writes still
    work).
    """

    def __post_init__(self) -> None:
        if self.min_free_bytes < 0:
            raise ValueError("min_free_bytes: must be zero or more")


@dataclass(frozen=True, kw_only=True)
class PolicySection:
    """Lane and allocation policy."""

    __pydantic_config__ = _FORBID

    passback: Literal["hard", "soft"] = "hard"
    """A plate already inside at an entry: hard refuses it (alarm passback), soft admits it and
    records entry.passback_allowed.
    """
    plate_match_distance: int = 1
    """Edits (0-2) by which a plate may differ from a plate list entry or an open ticket and still
    match, when the match is unique.
    """
    prepaid_exit_grace_minutes: int = 15
    """Minutes after paying on foot within which the exit is free; later, the difference is charged.
    """
    unpaid_invoices_for_prepay: int = 3
    """Unpaid invoices after which a plate is put on the prepay list."""
    prepay_authorization_cents: int | None = None
    """Amount a prepay-list plate must have authorised on its card before entry; none: the tariff's
    daily maximum.
    """
    overbooking_factor: Decimal = Decimal("1.0")
    """Reservations accepted up to capacity times this factor at any moment (1.0-2.0)."""
    reservation_early_minutes: int = 30
    """Minutes before its start from which a reservation is honoured at the entry."""
    reservation_grace_minutes: int = 30
    """Minutes after its start after which an unused reservation is released as a no-show."""
    walk_in_expected_stay_minutes: int = 180
    """How long a walk-in is expected to stay, for reservation_aware allocation (spaces needed by
    reservations starting within it are held back).
    """
    drift_tolerance: int = 3
    """Difference between counted and expected cars (per level: sensors vs tickets; whole lot: loop
    passages vs tickets) above which counter_drift is raised.
    """
    overstay_alarm_hours: int = 72
    """A ticket open longer than this many hours raises the overstay alarm."""
    vacated_release_minutes: int = 15
    """Per-spot lots: a ticket whose spot has sensed empty this long (after having seen its car) is
    released as VACATED; 0: never.
    """

    def __post_init__(self) -> None:
        if not 0 <= self.plate_match_distance <= 2:
            raise ValueError("plate_match_distance: must be 0, 1 or 2")
        if not Decimal(1) <= self.overbooking_factor <= Decimal(2):
            raise ValueError("overbooking_factor: must be between 1.0 and 2.0")
        if self.unpaid_invoices_for_prepay < 1:
            raise ValueError("unpaid_invoices_for_prepay: must be at least 1")
        if self.vacated_release_minutes < 0:
            raise ValueError("vacated_release_minutes: must be 0 (never) or more")


@dataclass(frozen=True, kw_only=True)
class ApiSection:
    """The local service API: a Unix socket (file permissions are the auth) and optionally
    loopback HTTP for display boards (`GET /availability` is public; the rest needs the token)."""

    __pydantic_config__ = _FORBID

    socket: str = "lotedge.sock"
    """The local API's Unix socket (mode 0660, group lotedge), relative to the data directory."""
    http_host: str = "127.0.0.1"
    """Address of the optional HTTP listener (loopback by default)."""
    http_port: int = 0
    """TCP port of the HTTP listener for display boards and tools (bearer token; GET /availability is
    public); 0: off.
    """
    token_file: str = "api.token"
    """File holding the HTTP API's bearer token (owner-only; created at first start), relative to the
    data directory.
    """

    def __post_init__(self) -> None:
        if not 0 <= self.http_port <= 65535:
            raise ValueError("http_port: must be 0 (off) or a TCP port")


@dataclass(frozen=True, kw_only=True)
class SimulationSection:
    """Traffic generator settings for `lotedge run --simulate`."""

    __pydantic_config__ = _FORBID

    arrivals_per_hour_per_lane: int = 240
    """Cars arriving at each entry lane per lot hour (Poisson arrivals)."""
    speed: float = 60.0
    """How many times faster than real time lot time runs in the simulation (arrivals and stays;
    device timing stays real).
    """
    mean_stay_minutes: int = 90
    """Mean parking stay in lot minutes (exponential)."""
    min_stay_minutes: int = 2
    """Shortest stay in lot minutes (time to drive to a space, park and come back)."""
    passage_ms: int = 400
    """Real milliseconds a car takes to drive over a loop."""
    unreadable_plate_rate: float = 0.05
    """Share of cars whose plate the simulated camera cannot read (0-1)."""
    gate_wait_ms: int = 3000
    """Real milliseconds a driver waits at a barrier that does not open before backing away."""
    max_queue: int = 20
    """Cars queued at one lane above which new arrivals drive on (balk)."""
    seed: int | None = None
    """Random seed of the traffic generator; none: a new one each run."""

    def __post_init__(self) -> None:
        if self.arrivals_per_hour_per_lane < 0:
            raise ValueError("arrivals_per_hour_per_lane: must not be negative")
        if self.speed <= 0:
            raise ValueError("speed: must be positive")
        if not 0 <= self.min_stay_minutes <= self.mean_stay_minutes:
            raise ValueError("min_stay_minutes: must be between 0 and mean_stay_minutes")
        if not 0 <= self.unreadable_plate_rate <= 1:
            raise ValueError("unreadable_plate_rate: must be between 0 and 1")


def _default_regions() -> tuple[RegionFormat, ...]:
    return (BUILTIN_REGIONS["us"],)


def _region_codes(value: Any) -> Any:
    """`[lpr] regions`: built-in country codes become their formats; tables stay as they are."""
    if not isinstance(value, list | tuple):
        return value
    out: list[Any] = []
    for item in value:
        for region in (region_by_code(item) if isinstance(item, str) else (item,)):
            if region not in out:
                out.append(region)
    return out


@dataclass(frozen=True, kw_only=True)
class LprSection:
    """Licence plate recognition: models, burst, trust thresholds and crop retention.

    Empty model paths mean the models shipped in `lpr/models/`.
    """

    __pydantic_config__ = _FORBID

    det_model: str = ""
    """Text detector model (ONNX); empty: the shipped PP-OCRv4 detector."""
    rec_model: str = ""
    """First text recogniser (ONNX, CTC); empty: the shipped plate recogniser."""
    rec_dict: str = ""
    """Dictionary of rec_model, one character per line; empty: the shipped one."""
    second_rec_model: str = ""  # "" = the shipped PP-OCRv6 small recogniser; "none" = no vote
    """A second recogniser whose reads vote with the first's; empty: the shipped PP-OCRv6 small; none:
    no second recogniser.
    """
    second_rec_dict: str = ""
    """Dictionary of second_rec_model; empty: the shipped one."""
    second_rec_below: float = 2.0  # the second reads a line only when the first is less sure (> 1: always)
    """The second recogniser reads a line only when the first is less sure than this (0: never, above
    1: always; at most 2).
    """
    second_rec_weight: float = 1.3
    """How much the second recogniser's vote counts against the first's (0.5-3) for plates of
    regions the shipped first recogniser was not fine-tuned on (all but us)."""
    detector: str = "yolo"  # the plate detector (AGPL-3.0); "text" = text detector only
    """yolo: a plate detector first, the text search as its last resort (see
    plate_det_search_px; the shipped detector is AGPL-3.0); text: the text-detector search only.
    """
    plate_det_model: str = ""
    """Plate detector model (ONNX, YOLOv8 style); empty: the shipped one."""
    plate_det_px: int = 416
    """Plate detector input size (longer side; a multiple of 32 from 96 to 1280)."""
    plate_det_retry_px: int = 640
    """A second, larger plate-detector look when the first gives no plate read at least
    plate_sure confident (a multiple of 32 up to 1280); 0: off."""
    plate_det_search_px: int = 0
    """The last resort when both plate-detector looks give no good read, for the far and small
    plates. 0: the whole-frame text search; a size (a multiple of 32 above both looks' and up
    to 1280, such as 800): a third plate-detector look instead, at half the CPU and less memory
    at its peak, which read fewer held-out plates (docs/lpr.md, "How a plate is read")."""
    plate_sure: float = 0.0
    """A plate read this confident (0-1) after the plate detector ends the search."""
    plate_line_px: int = 128
    """Plate windows are scaled so the plate is about this tall (32-256 px) before the text line
    inside it is detected; smaller is faster."""
    threads: int = 1
    """onnxruntime intra-op threads per model session: more than 1 reads a photo sooner for more
    CPU time in all, worth it only where cores sit idle between cars."""
    reader_cpu_share: float = 0.75
    """Under a CPU quota (a cgroup's cpu.max or cfs_quota_us), the share of it the plate reader
    threads may use (0.1-1), in a sub-group of the service's cgroup: the lanes' decisions (and
    the sensor pollers) keep the rest of every period. 1: no sub-group. Without a quota nothing
    is created."""
    det_max_side_px: int = 640
    """Text detector input size (longer side) of the first text-search pass (96-4096), with
    `detector = "text"`."""
    det_retry_max_side_px: int = 896
    """A second, larger text-search pass when the first finds no good plate (96-4096); 0: off.
    Behind the plate detector with `plate_det_search_px = 0`, the whole-frame fallback is one
    pass at the larger of the two."""
    burst_frames: int = 5
    """Frames taken per lane read."""
    burst_interval_ms: int = 200
    """Milliseconds between the frames of a burst."""
    min_confidence: float = 0.5
    """A voted read less sure than this (0-1) is a no-read. At 0.5, in the `us` region a plate
    counts only when both recognisers read it (docs/lpr.md, "In the lane")."""
    regions: Annotated[tuple[RegionFormat, ...], BeforeValidator(_region_codes)] = field(
        default_factory=_default_regions)
    """Plate formats accepted: [[lpr.regions]] tables and/or built-in country codes ("us", "br",
    "uk", "de", "fr", ... or "eu" for every European one). A read that fits a format as it is
    wins over one that needs look-alike characters mapped (O/0, I/1, B/8 ...); ties go to the
    format listed first.
    """
    list_max_distance: int = 1
    """Edit distance within which a read matches a permit, prepay or block list entry."""
    storage_dir: str = "lpr"
    """Folder of plate evidence (crops and frames), relative to the data directory."""
    retention_days: int = 30
    """Evidence older than this many days is deleted."""
    retention_max_mb: int = 2000
    """Evidence is deleted oldest first above this many megabytes."""
    reconnect_initial_s: float = 0.5
    """First wait before reopening a failed camera (doubling each time)."""
    reconnect_max_s: float = 30.0
    """Longest wait between camera reopen attempts."""

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError("threads: must be at least 1")
        if not 0.1 <= self.reader_cpu_share <= 1.0:
            raise ValueError("reader_cpu_share: must be between 0.1 and 1")
        if self.detector not in ("yolo", "text"):
            raise ValueError("detector: must be 'yolo' (plate detector, AGPL-3.0 model) or "
                             "'text' (text detector only, Apache-2.0 models)")
        if not 96 <= self.plate_det_px <= 1280 or self.plate_det_px % 32:
            raise ValueError("plate_det_px: must be a multiple of 32 between 96 and 1280")
        if self.plate_det_retry_px and (
                not 96 <= self.plate_det_retry_px <= 1280 or self.plate_det_retry_px % 32):
            raise ValueError("plate_det_retry_px: must be 0 (off) or a multiple of 32 between "
                             "96 and 1280")
        if self.plate_det_search_px and (
                not self.plate_det_px < self.plate_det_search_px <= 1280
                or self.plate_det_search_px <= self.plate_det_retry_px
                or self.plate_det_search_px % 32):
            raise ValueError("plate_det_search_px: must be 0 (the text search) or a multiple of "
                             "32 larger than plate_det_px and plate_det_retry_px, up to 1280")
        if not 0.5 <= self.second_rec_weight <= 3:
            raise ValueError("second_rec_weight: must be between 0.5 and 3")
        if not 0 <= self.plate_sure <= 1:
            raise ValueError("plate_sure: must be between 0 and 1")
        if not 32 <= self.plate_line_px <= 256:
            raise ValueError("plate_line_px: must be between 32 and 256")
        if not 96 <= self.det_max_side_px <= 4096:
            raise ValueError("det_max_side_px: must be between 96 and 4096")
        if self.det_retry_max_side_px and not 96 <= self.det_retry_max_side_px <= 4096:
            raise ValueError("det_retry_max_side_px: must be 0 (off) or between 96 and 4096")
        if self.burst_frames < 1:
            raise ValueError("burst_frames: must be at least 1")
        if self.burst_interval_ms < 0:
            raise ValueError("burst_interval_ms: must not be negative")
        if not 0 <= self.min_confidence <= 1:
            raise ValueError("min_confidence: must be between 0 and 1")
        if not 0 <= self.second_rec_below <= 2:
            raise ValueError("second_rec_below: must be between 0 (never) and 2 (always)")
        if not self.regions:
            raise ValueError("regions: at least one region format is needed")
        if self.list_max_distance < 0:
            raise ValueError("list_max_distance: must not be negative")
        if self.retention_days < 0 or self.retention_max_mb < 0:
            raise ValueError("retention_days: retention limits must not be negative")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise ValueError("reconnect_initial_s: must be positive and <= reconnect_max_s")


@dataclass(frozen=True, kw_only=True)
class SensorBusSection:
    """One spot-sensor port: an RS-485 Modbus RTU bus of addressed sensors, or one MaxBotix.

    `port` is a device path, a pyserial URL, or "sim" (a simulator in `--simulate`).
    Modbus: `sensor_model` names a register map (a preset or a `[[sensor_models]]` id); the line
    is `baud`/`parity`/`stop_bits` (8 data bits); each address is polled every
    `poll_interval_ms`, a poll waits `request_timeout_ms` and is tried `retries` more times.
    MaxBotix: `maxbotix_format` is the model family's output ("R3-cm", "R3-in", "R4-mm");
    readings outside `min_cm`..`max_cm` (the model's limits) are "no target", never free.
    `floor_cm`: what the sensor reads over the empty spot (its mounting height); its spots are
    occupied below `floor_cm - 50` unless `[devices] spot_thresholds_cm` names them.
    """

    __pydantic_config__ = _FORBID

    id: str
    """The bus's id (1-32 letters, digits, '-' or '_'); spots name their sensor as ID:ADDRESS."""
    port: str = "sim"
    """Serial device (use a stable /dev/serial/by-id/ path), a pyserial URL (socket://host:port for an
    RS-485-to-TCP gateway), or sim (a simulator, with --simulate).
    """
    protocol: Literal["modbus", "maxbotix"] = "modbus"
    """modbus: an RS-485 bus of addressed Modbus RTU sensors; maxbotix: one MaxBotix sensor on this
    port.
    """
    baud: int | None = None
    """Line speed; none: the protocol's usual one (Modbus 19200, MaxBotix 9600)."""
    parity: Literal["N", "E", "O"] = "N"
    """Parity of the line: N, E or O (8 data bits)."""
    stop_bits: Literal[1, 2] = 1
    """Stop bits of the line: 1 or 2."""
    sensor_model: str = "dfrobot-urm14"
    """Modbus: the register map of the sensors on this bus, a preset (dfrobot-urm14, dfrobot-sen0492,
    apg-mnu) or a [[sensor_models]] id.
    """
    poll_interval_ms: int = 500
    """Modbus: each address is polled at most this often (10-600,000 ms)."""
    request_timeout_ms: int = 100
    """Modbus: how long one answer is waited for (5-5000 ms)."""
    retries: int = 1
    """Modbus: further tries of a request that got no valid answer (0-5)."""
    maxbotix_format: Literal["R3-cm", "R3-in", "R4-mm"] = "R3-cm"
    """MaxBotix: the model family's output: R3-cm, R3-in (R + 3 digits) or R4-mm (R + 4 digits, HR
    series).
    """
    min_cm: int | None = None
    """MaxBotix: the model's shortest valid reading; below it is 'no target', never free. None: the
    format's usual limit.
    """
    max_cm: int | None = None
    """MaxBotix: the model's longest valid reading; a max-range report is 'no target', never free.
    None: the format's usual limit.
    """
    floor_cm: int | None = None
    """What the sensor reads over the empty spot (its mounting height); its spots are occupied below
    floor_cm - 50 unless [devices] spot_thresholds_cm names them.
    """
    no_target_fault_after_s: float = 60.0
    """Seconds an address may report only 'no target' before its no_target fault."""
    silent_fault_after_s: float = 3.0
    """Seconds an address may go without a valid answer before its silent fault."""
    bad_rate_fault: float = 0.2
    """Share of the last 20 answers that were exceptions, corrupt frames or out of range above which
    the bad_readings fault is raised.
    """

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", self.id):
            raise ValueError("id: must be 1-32 letters, digits, '-' or '_'")
        if self.baud is not None and self.baud <= 0:
            raise ValueError("baud: must be positive")
        if not 10 <= self.poll_interval_ms <= 600_000:
            raise ValueError("poll_interval_ms: must be between 10 and 600000")
        if not 5 <= self.request_timeout_ms <= 5000:
            raise ValueError("request_timeout_ms: must be between 5 and 5000")
        if not 0 <= self.retries <= 5:
            raise ValueError("retries: must be between 0 and 5")
        if self.min_cm is not None and self.max_cm is not None and self.min_cm >= self.max_cm:
            raise ValueError("min_cm: must be below max_cm")
        if self.floor_cm is not None and not 60 <= self.floor_cm <= (self.max_cm or 1000):
            raise ValueError("floor_cm: the empty spot's reading must be 60 cm or more and "
                             "within the sensor's range (max_cm)")
        if self.no_target_fault_after_s <= 0 or self.silent_fault_after_s <= 0:
            raise ValueError("silent_fault_after_s: fault delays must be positive")
        if not 0 < self.bad_rate_fault <= 1:
            raise ValueError("bad_rate_fault: must be a share between 0 and 1")

    @property
    def line_baud(self) -> int:
        """The configured speed, else the protocol's usual one (MaxBotix 9600, Modbus 19200)."""
        if self.baud is not None:
            return self.baud
        return 9600 if self.protocol == "maxbotix" else 19200


@dataclass(frozen=True, kw_only=True)
class SignSection:
    """An LED availability sign: `fields` maps a sign field to a level id or "ALL"."""

    __pydantic_config__ = _FORBID

    id: str
    """The sign's id."""
    port: str = "sim"
    """Serial device or pyserial URL of the sign, or sim."""
    fields: dict[str, str] = field(default_factory=dict)
    """Sign field name (1-8 characters) = the level id it shows, or ALL for the whole lot."""
    thresholds: tuple[int, ...] = (0, 5, 10, 50)
    """Free counts at which a change is sent at once (otherwise every refresh_s)."""
    refresh_s: float = 10.0
    """Seconds between full updates (also the sign's keep-alive)."""
    full_at: int = 0
    """Free count at or below which a field shows FULL."""
    baud: int = 9600
    """Line speed of the sign's port."""

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError("fields: a sign needs at least one field, e.g. { L1 = \"L1\" }")
        for name in self.fields:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,8}", name):
                raise ValueError(f"fields.{name}: a field name is 1-8 letters, digits, - or _")
        if self.refresh_s <= 0:
            raise ValueError("refresh_s: must be positive")


@dataclass(frozen=True, kw_only=True)
class DevicesSection:
    """Device timing and thresholds: loop supervision, gates and spot-sensor filtering."""

    __pydantic_config__ = _FORBID

    loop_stuck_after_s: float = 300.0
    """A loop occupied longer than this raises the loop_stuck fault."""
    loop_dead_after_s: float = 14400.0
    """A loop without an edge this long, while the other loop of its lane saw loop_dead_min_edges
    edges, raises the loop_dead fault.
    """
    loop_dead_min_edges: int = 10
    """Edges the other loop must have seen before a silent loop counts as dead."""
    gate_closing_travel_ms: int = 3000
    """How long the boom takes to come down; a safety-loop contact within it reverses the barrier.
    """
    gate_feedback_timeout_ms: int = 4000
    """How long the barrier's limit switch may disagree with the command before a position fault."""
    spot_occupied_below_cm: int = 150
    """A spot sensor reading closer than this is OCCUPIED (per spot: spot_thresholds_cm)."""
    spot_hysteresis_cm: int = 20
    """A spot is AVAILABLE only beyond the threshold plus this; in between it keeps its state."""
    spot_debounce_ms: int = 3000
    """The window over which a new spot state must hold before it is taken."""
    spot_settle_ratio: float = 0.8  # share of the window's readings a new state needs
    """Share of the window's readings that must agree on a new state (above 0.5, at most 1)."""
    spot_settle_min_readings: int = 16  # ... taken over at least this many readings
    """Readings the window must hold before a new state is taken."""
    spot_heartbeat_s: float = 1800.0
    """A spot with no valid reading this long goes UNKNOWN (its level is then counted from tickets).
    """
    spot_thresholds_cm: dict[str, int] = field(default_factory=dict)
    """Per-spot occupied threshold in cm (spot id = cm), overriding spot_occupied_below_cm."""
    poller_cpu_share: float = 1.0
    """Under a CPU quota, the share of it the spot-sensor bus pollers may use (0.05-1), in a
    sub-group of the service's cgroup, as `[lpr] reader_cpu_share` is for the plate readers.
    1 (the default): no sub-group. A bus's line paces its poller (a poll waits for the answer,
    ~13.5 ms at 19200 baud), and a poller the kernel stops for its share while it holds
    Python's GIL stops every Python thread, the event loop too, until its next period (~14 ms
    at 0.15): under half a core that made the loop's lag p99 21 ms instead of 2 ms."""

    def __post_init__(self) -> None:
        if not 0.05 <= self.poller_cpu_share <= 1.0:
            raise ValueError("poller_cpu_share: must be between 0.05 and 1")
        for key in ("loop_stuck_after_s", "loop_dead_after_s", "spot_heartbeat_s",
                    "spot_occupied_below_cm"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}: must be positive")
        for key in ("spot_hysteresis_cm", "spot_debounce_ms", "gate_closing_travel_ms",
                    "gate_feedback_timeout_ms", "loop_dead_min_edges"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must not be negative")
        if not 0.5 < self.spot_settle_ratio <= 1:
            raise ValueError("spot_settle_ratio: must be above 0.5 and at most 1")
        if self.spot_settle_min_readings < 1:
            raise ValueError("spot_settle_min_readings: must be at least 1")
        for spot_id, cm in self.spot_thresholds_cm.items():
            if cm <= 0:
                raise ValueError(f"spot_thresholds_cm.{spot_id}: must be positive")

    def occupancy(self, spot_id: str) -> OccupancySettings:
        """The occupancy filter settings of one spot (per-spot threshold if configured)."""
        return OccupancySettings(
            occupied_below_cm=self.spot_thresholds_cm.get(spot_id, self.spot_occupied_below_cm),
            hysteresis_cm=self.spot_hysteresis_cm,
            debounce_s=self.spot_debounce_ms / 1000,
            settle_ratio=self.spot_settle_ratio,
            settle_min_readings=self.spot_settle_min_readings,
            heartbeat_s=self.spot_heartbeat_s,
        )


@dataclass(frozen=True, kw_only=True)
class PaymentSection:
    """The card terminal: the simulator, or a ZVT terminal (real or the emulator)."""

    __pydantic_config__ = _FORBID

    terminal: Literal["simulated", "zvt", "zvt-emulator"] = "simulated"
    """Which terminal: 'simulated' (in-process), 'zvt' (a ZVT terminal at host:port) or
    'zvt-emulator' (a ZVT emulator the service starts on host:port, for `--simulate`)."""
    host: str = "127.0.0.1"
    """The ZVT terminal's address (TCP)."""
    port: int = 20007
    """The ZVT terminal's TCP port (20007 by convention); 0 for 'zvt-emulator': any free port."""
    password_file: str | None = None
    """File (mode 0600) holding the terminal's 6-digit ECR password; none: 000000."""
    currency_code: int = 978
    """ISO 4217 numeric currency code the terminal books in (978 EUR, 840 USD)."""
    flow: Literal["preauth", "sale"] = "preauth"
    """'preauth': reserve at the exit, book the fee (06 22 + 06 24); 'sale': one payment (06 01)."""
    answer_timeout_s: float = 60.0
    """Longest silence from the terminal during one command before it is in doubt."""
    offline_floor_cents: int = 5000
    """The emulator's floor limit: offline approvals up to this amount (a real terminal's own)."""
    end_of_day_at: str | None = "03:00"
    """Local time of the daily end-of-day (06 50) that submits the day's bookings; none: never."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535 or (self.port == 0 and self.terminal != "zvt-emulator"):
            raise ValueError("port: must be a TCP port (0, a free one, only for 'zvt-emulator')")
        if not 0 < self.currency_code <= 999:
            raise ValueError("currency_code: an ISO 4217 numeric code such as 978")
        if self.answer_timeout_s <= 0:
            raise ValueError("answer_timeout_s: must be positive")
        if self.offline_floor_cents < 0:
            raise ValueError("offline_floor_cents: must not be negative")
        if self.end_of_day_at is not None and not re.fullmatch(
                r"([01]\d|2[0-3]):[0-5]\d", self.end_of_day_at):
            raise ValueError("end_of_day_at: HH:MM (24 h, the lot's local time)")


@dataclass(frozen=True, kw_only=True)
class PrinterSection:
    """One ESC/POS printer: an entry lane's ticket printer or the booth's receipt printer."""

    __pydantic_config__ = _FORBID

    id: str
    """The lane id it serves, or 'booth'."""
    backend: Literal["file", "dummy", "usb", "serial", "network"] = "file"
    """python-escpos backend: 'usb', 'serial', 'network'; 'file' writes the bytes to `path`."""
    path: str = ""
    """File for the 'file' backend (in the data directory; default printer-<id>.escpos)."""
    port: str = ""
    """Serial device of the 'serial' backend."""
    baud: int = 19200
    """Serial line speed of the 'serial' backend."""
    host: str = ""
    """Address of the 'network' backend (raw TCP printing)."""
    tcp_port: int = 9100
    """TCP port of the 'network' backend."""
    vendor_id: int = 0
    """USB vendor id of the 'usb' backend (e.g. 0x04b8)."""
    product_id: int = 0
    """USB product id of the 'usb' backend."""
    width: int = 42
    """Characters per line (80 mm paper: 42 or 48; 58 mm: 32)."""

    def __post_init__(self) -> None:
        if self.backend == "serial" and not self.port:
            raise ValueError("port: the serial backend needs a port")
        if self.backend == "network" and not self.host:
            raise ValueError("host: the network backend needs a host")
        if self.backend == "usb" and not (self.vendor_id and self.product_id):
            raise ValueError("vendor_id: the usb backend needs vendor_id and product_id")
        if not 24 <= self.width <= 64:
            raise ValueError("width: between 24 and 64 characters")


@dataclass(frozen=True, kw_only=True)
class ScannerSection:
    """A ticket scanner at an exit lane or the booth."""

    __pydantic_config__ = _FORBID

    lane: str
    """The lane id it serves, or 'booth'."""
    kind: Literal["serial", "hid", "camera"] = "serial"
    """'serial' (line-terminated codes), 'hid' (keyboard-wedge USB, needs evdev) or 'camera'
    (the lane camera's frames searched for QR codes)."""
    port: str = ""
    """Serial device or pyserial URL ('serial'), or the evdev device ('hid')."""
    baud: int = 9600
    """Serial line speed."""
    hold_s: float = 30.0
    """How long a scanned code counts as the ticket at the lane."""

    def __post_init__(self) -> None:
        if self.kind in ("serial", "hid") and not self.port:
            raise ValueError(f"port: a {self.kind} scanner needs a port")
        if self.hold_s <= 0:
            raise ValueError("hold_s: must be positive")


@dataclass(frozen=True, kw_only=True)
class ReceiptsSection:
    """What tickets and receipts say."""

    __pydantic_config__ = _FORBID

    vat_rate: Decimal | None = None
    """VAT included in fees, as a fraction (0.19 for 19 %); none: no VAT line."""
    vat_label: str = "VAT"
    """The tax's name on receipts (VAT, MwSt, GST)."""
    ticket_key_file: str = "ticket.key"
    """File (mode 0600, created on first start) with the key that signs ticket QR codes."""

    def __post_init__(self) -> None:
        if self.vat_rate is not None and not Decimal(0) <= self.vat_rate < Decimal(1):
            raise ValueError("vat_rate: a fraction between 0 and 1 (0.19 for 19 %)")


@dataclass(frozen=True, kw_only=True)
class LotConfig:
    """A whole lot, as validated from its TOML file."""

    __pydantic_config__ = _FORBID

    lot: LotSection
    """The lot's identity and allocation."""
    levels: tuple[LevelDef, ...]
    """The lot's levels (at least one); in counter mode with their capacity."""
    spots: tuple[SpotDef, ...] = ()
    """Individual spots (per-spot lots), each with its level, type, distance and sensor."""
    spot_ranges: tuple[SpotRange, ...] = ()
    """Numbered runs of spots of one type on one level, expanded into [[spots]]."""
    lanes: tuple[LaneDef, ...] = ()
    """Entry and exit lanes: loops, barrier relay, camera, wiring."""
    tariff: Tariff = field(default_factory=Tariff)
    """Prices: grace, minimum, hourly, daily maximum, multipliers, bands, flat rates, events,
    validations, dynamic pricing (see Fees and pricing).
    """
    hardware: HardwareSection = field(default_factory=HardwareSection)
    """Which GPIO backend drives the devices."""
    cloud: CloudSection = field(default_factory=CloudSection)
    """Cloud sync: broker, bundles, keys, retention, offline alarms."""
    storage: StorageSection = field(default_factory=StorageSection)
    """Where the ledger and the appliance's files live."""
    api: ApiSection = field(default_factory=ApiSection)
    """The local API: Unix socket and optional loopback HTTP."""
    policy: PolicySection = field(default_factory=PolicySection)
    """Entry, exit, reservation and count-checking rules."""
    simulation: SimulationSection = field(default_factory=SimulationSection)
    """The traffic generator of `lotedge run --simulate`."""
    devices: DevicesSection = field(default_factory=DevicesSection)
    """Loop, gate and spot-sensor timing and thresholds."""
    sensor_buses: tuple[SensorBusSection, ...] = ()
    """Spot-sensor ports: RS-485 Modbus RTU buses or MaxBotix sensors."""
    sensor_models: tuple[RegisterMap, ...] = ()
    """Register maps of Modbus sensor models beyond the presets."""
    signs: tuple[SignSection, ...] = ()
    """LED availability signs."""
    lpr: LprSection = field(default_factory=LprSection)
    """Plate reading: models, bursts, trust thresholds, regions, evidence retention."""
    payment: PaymentSection = field(default_factory=PaymentSection)
    """The payment terminal."""
    printers: tuple[PrinterSection, ...] = ()
    """Ticket and receipt printers."""
    scanners: tuple[ScannerSection, ...] = ()
    """Ticket scanners."""
    receipts: ReceiptsSection = field(default_factory=ReceiptsSection)
    """What receipts and tickets carry."""
    source_path: str | None = None
    source_sha256: str | None = None

    def register_map(self, model: str) -> RegisterMap:
        """A sensor model's register map: a `[[sensor_models]]` entry, else a preset."""
        for m in self.sensor_models:
            if m.id == model:
                return m
        return PRESETS[model]

    def lane(self, lane_id: str) -> LaneDef:
        """The lane with this id."""
        for lane in self.lanes:
            if lane.id == lane_id:
                return lane
        raise KeyError(lane_id)

    def db_path(self, base: Path | None = None) -> Path:
        """Absolute path of the ledger database (relative data_dir is against `base` or cwd)."""
        data_dir = Path(self.storage.data_dir)
        if not data_dir.is_absolute():
            data_dir = (base or Path.cwd()) / data_dir
        return data_dir / self.storage.db_file

    def data_path(self, name: str, base: Path | None = None) -> Path:
        """A file in the data directory (absolute names are kept)."""
        p = Path(name)
        return p if p.is_absolute() else self.db_path(base).parent / p

    def entry_lanes(self) -> list[LaneDef]:
        """Lanes that let vehicles in."""
        return [lane for lane in self.lanes if lane.direction == LaneDirection.ENTRY]

    def exit_lanes(self) -> list[LaneDef]:
        """Lanes that let vehicles out."""
        return [lane for lane in self.lanes if lane.direction == LaneDirection.EXIT]


_ADAPTER = TypeAdapter(LotConfig)


def _loc_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"']+(?:\s*\.\s*[A-Za-z0-9_\-\"']+)*)\s*=")


def key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Map each key path of a TOML document to the 1-based line where it is written."""
    lines: dict[tuple[Any, ...], int] = {}
    counts: dict[tuple[str, ...], int] = {}
    current: tuple[Any, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            names = tuple(p.strip().strip("\"'") for p in header.group(2).split("."))
            if header.group(1) == "[[":
                index = counts.get(names, 0)
                counts[names] = index + 1
                current = (*names, index)
            else:
                current = names
            lines.setdefault(current, number)
            continue
        key = _KEY.match(line)
        if key:
            names = tuple(p.strip().strip("\"'") for p in key.group(1).split("."))
            lines.setdefault((*current, *names), number)
    return lines


def _line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _fail(message: str, loc: tuple[Any, ...], path: str | None, lines: dict) -> ConfigError:
    return ConfigError(f"{_loc_text(loc)}: {message}", path=path, line=_line_for(loc, lines))


def _check_references(cfg: LotConfig, path: str | None,
                      lines: dict) -> tuple[SpotDef, ...]:
    """Check ids and references; return every spot, the ranges expanded (once)."""
    level_ids = [lvl.id for lvl in cfg.levels]
    if not level_ids:
        raise _fail("a lot needs at least one level", ("levels",), path, lines)
    for i, lvl in enumerate(cfg.levels):
        if level_ids.count(lvl.id) > 1:
            raise _fail(f"duplicate level id {lvl.id!r}", ("levels", i, "id"), path, lines)
    for i, spot in enumerate(cfg.spots):
        if spot.level not in level_ids:
            raise _fail(f"unknown level {spot.level!r}", ("spots", i, "level"), path, lines)
    for i, rng in enumerate(cfg.spot_ranges):
        if rng.level not in level_ids:
            raise _fail(f"unknown level {rng.level!r}", ("spot_ranges", i, "level"), path, lines)
    total = len(cfg.spots) + sum(r.count for r in cfg.spot_ranges)
    if total > MAX_LOT_SPOTS:  # checked before the ranges are expanded into memory
        raise _fail(f"{total} spots in all; a lot may have at most {MAX_LOT_SPOTS}",
                    ("spot_ranges",) if cfg.spot_ranges else ("spots",), path, lines)
    spots = (*cfg.spots, *(s for r in cfg.spot_ranges for s in r.expand()))
    seen_spots: set[str] = set()
    for spot in spots:
        if spot.id in seen_spots:
            raise _fail(f"duplicate spot id {spot.id!r}", ("spots",), path, lines)
        seen_spots.add(spot.id)
    lane_ids: set[str] = set()
    pin_owner: dict[int, str] = {}
    for i, lane in enumerate(cfg.lanes):
        if lane.id in lane_ids:
            raise _fail(f"duplicate lane id {lane.id!r}", ("lanes", i, "id"), path, lines)
        lane_ids.add(lane.id)
        if lane.level is not None and lane.level not in level_ids:
            raise _fail(f"unknown level {lane.level!r}", ("lanes", i, "level"), path, lines)
        for key in ("arming_loop_pin", "safety_loop_pin", "barrier_relay_pin", "gate_feedback_pin"):
            pin = getattr(lane, key)
            if pin is None:
                continue
            if pin in pin_owner:
                raise _fail(
                    f"GPIO pin {pin} is already used by {pin_owner[pin]}",
                    ("lanes", i, key), path, lines,
                )
            pin_owner[pin] = f"lane {lane.id}"
    if cfg.lot.mode == "per_spot" and not seen_spots:
        raise _fail("per_spot mode needs spots or spot_ranges", ("lot", "mode"), path, lines)
    if cfg.lot.mode == "counter" and not seen_spots and not any(lv.capacity for lv in cfg.levels):
        raise _fail("counter mode needs a capacity on some level (or spots)",
                    ("levels",), path, lines)
    return spots


def _check_devices(cfg: LotConfig, spots: tuple[SpotDef, ...], path: str | None,
                   lines: dict) -> None:
    bus_ids: set[str] = set()
    ports: dict[str, str] = {}
    models = {*PRESETS, *(m.id for m in cfg.sensor_models)}
    for i, bus in enumerate(cfg.sensor_buses):
        if bus.protocol == "modbus" and bus.sensor_model not in models:
            raise _fail(f"unknown sensor model {bus.sensor_model!r} (presets: "
                        f"{', '.join(sorted(PRESETS))}, or a [[sensor_models]] id)",
                        ("sensor_buses", i, "sensor_model"), path, lines)
        if bus.id in bus_ids:
            raise _fail(f"duplicate sensor bus id {bus.id!r}", ("sensor_buses", i, "id"), path,
                        lines)
        bus_ids.add(bus.id)
        if bus.port != "sim" and bus.port in ports:
            raise _fail(f"port {bus.port!r} is already used by {ports[bus.port]}",
                        ("sensor_buses", i, "port"), path, lines)
        ports[bus.port] = f"sensor bus {bus.id}"
    if bus_ids:
        protocol = {bus.id: bus.protocol for bus in cfg.sensor_buses}
        wired: dict[tuple[str, int], str] = {}
        for spot in spots:
            if not spot.sensor:
                continue
            bus, _, addr = spot.sensor.partition(":")
            if bus not in bus_ids:
                raise _fail(f"spot {spot.id}: sensor {spot.sensor!r} names no [[sensor_buses]] id",
                            ("spots",), path, lines)
            top = MAX_BUS_ADDRESS if protocol[bus] == "modbus" else 1
            addr = addr or "1"
            if not (addr.isascii() and addr.isdigit()) or not 1 <= int(addr) <= top:
                raise _fail(f"spot {spot.id}: sensor {spot.sensor!r}: the address after ':' must "
                            f"be a number from 1 to {top} on a {protocol[bus]} bus",
                            ("spots",), path, lines)
            key = (bus, int(addr))
            if key in wired:
                raise _fail(f"spot {spot.id}: sensor {spot.sensor!r} is already spot "
                            f"{wired[key]}'s", ("spots",), path, lines)
            wired[key] = spot.id
    level_ids = {lvl.id for lvl in cfg.levels}
    for i, sign in enumerate(cfg.signs):
        if sign.port != "sim" and sign.port in ports:
            raise _fail(f"port {sign.port!r} is already used by {ports[sign.port]}",
                        ("signs", i, "port"), path, lines)
        ports[sign.port] = f"sign {sign.id}"
        for name, level in sign.fields.items():
            if level != "ALL" and level not in level_ids:
                raise _fail(f"unknown level {level!r} (a level id or \"ALL\")",
                            ("signs", i, "fields", name), path, lines)
    lane_ids = {lane.id for lane in cfg.lanes}
    for i, printer in enumerate(cfg.printers):
        if printer.id != "booth" and printer.id not in lane_ids:
            raise _fail(f"unknown lane {printer.id!r} (a lane id or \"booth\")",
                        ("printers", i, "id"), path, lines)
    for i, scanner in enumerate(cfg.scanners):
        if scanner.lane != "booth" and scanner.lane not in lane_ids:
            raise _fail(f"unknown lane {scanner.lane!r} (a lane id or \"booth\")",
                        ("scanners", i, "lane"), path, lines)


def parse_config(text: str, *, path: str | None = None) -> LotConfig:
    """Validate TOML text into a LotConfig; raise ConfigError naming the key and line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        match = re.search(r"line (\d+)", str(err))
        raise ConfigError(f"not valid TOML: {err}", path=path,
                          line=int(match.group(1)) if match else None) from err
    lines = key_lines(text)
    for key in ("source_path", "source_sha256"):
        if key in raw:
            raise _fail("unknown key", (key,), path, lines)
    raw["source_path"] = path
    raw["source_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    try:
        cfg = _ADAPTER.validate_python(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        # __post_init__ checks say which field they reject as "field: reason".
        field_prefix = re.match(r"^([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_]+)*): (.*)$", msg)
        if first["type"] == "value_error" and field_prefix:
            loc = (*loc, *(int(p) if p.isdigit() else p for p in field_prefix.group(1).split(".")))
            msg = field_prefix.group(2)
        if first["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            msg = "unknown key (typo?)"
        elif first["type"] == "missing":
            msg = "required key is missing"
        elif "input" in first and not isinstance(first["input"], dict | list):
            msg = f"{msg} (got {first['input']!r})"
        more = len(err.errors()) - 1
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise _fail(msg, loc, path, lines) from None
    spots = _check_references(cfg, path, lines)
    _check_devices(cfg, spots, path, lines)
    return dataclasses.replace(cfg, spots=spots, spot_ranges=())


def load_config(path: str | Path) -> LotConfig:
    """Read and validate a lot configuration file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError("file not found", path=str(p)) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read file: {err}", path=str(p)) from err
    return parse_config(text, path=str(p))
