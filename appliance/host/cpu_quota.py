"""The service's CPU quota (cgroup v1 `cpu` or v2 `cpu.max`), and sub-groups that keep part of it
for the lanes when plate reads and sensor polling would take it all.

Under a CPU quota the kernel stops every thread of a group once the group has used its share of
a period (CFS bandwidth control): a plate read that spends the quota stops the event loop too,
whatever its niceness, and a lane's decision waits for the next period (under half a core, p99
68 ms against 6.5 ms without a quota). `CpuGroup` puts a kind of worker thread (the plate
readers, the sensor bus pollers) in a sub-group limited to its share of the quota, so the event
loop always has the remainder of each period. Without a quota (a Pi running the service alone)
nothing is created: niceness already gives the loop the core first. Where the cgroup cannot be
written (systemd's ProtectControlGroups=, a container), the workers share the quota and a
warning says so.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path("/sys/fs/cgroup")
READERS = "lotedge-readers"
POLLERS = "lotedge-pollers"


@dataclass(frozen=True, slots=True)
class CpuQuota:
    """The tightest CPU quota on this process's cgroup or its ancestors.

    version: 1 or 2; own: this process's cgroup directory (where a sub-group would go);
    quota_us per period_us: the limit (of the ancestor that sets the tightest).
    """

    version: int
    own: Path
    quota_us: int
    period_us: int

    @property
    def cores(self) -> float:
        """The limit in cores (0.5: half of one core)."""
        return self.quota_us / self.period_us


def usable_cores(quota: CpuQuota | None) -> int:
    """Whole CPUs this process can keep busy: the CPUs it may run on, no more than its quota
    rounded up (half a core: 1). Sizes pools of CPU-bound threads, which beyond it only take
    turns on the same quota, each holding its own buffers meanwhile."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota.cores)))
    return max(1, cpus)


def _v1_mount(root: Path) -> Path | None:
    for name in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
        if (root / name / "cpu.cfs_quota_us").is_file():
            return root / name
    return None


def _limit(directory: Path, version: int) -> tuple[int, int] | None:
    """(quota, period) set on one cgroup directory, None if unlimited or unreadable."""
    try:
        if version == 2:
            quota, period = (directory / "cpu.max").read_text().split()
            return None if quota == "max" else (int(quota), int(period))
        quota_us = int((directory / "cpu.cfs_quota_us").read_text())
        period_us = int((directory / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else (quota_us, period_us)
    except (OSError, ValueError):
        return None


def cpu_quota(*, root: Path = ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")
              ) -> CpuQuota | None:
    """This process's CPU quota, or None (no quota, not Linux, or no cgroup to read)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    version, mount, relative = 0, None, None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            version, mount, relative = 1, _v1_mount(root), path
            break
    if version == 0:
        if not (root / "cgroup.controllers").is_file():
            return None
        version, mount = 2, root
        relative = next((line.split(":", 2)[2] for line in lines if line.startswith("0::")),
                        None)
    if mount is None or relative is None:
        return None
    own = mount / relative.lstrip("/")
    tightest: tuple[int, int] | None = None
    directory = own
    while True:
        found = _limit(directory, version)
        if found and (tightest is None or found[0] / found[1] < tightest[0] / tightest[1]):
            tightest = found
        if directory == mount or mount not in directory.parents:
            break
        directory = directory.parent
    if tightest is None:
        return None
    return CpuQuota(version=version, own=own, quota_us=tightest[0], period_us=tightest[1])


class CpuGroup:
    """A cgroup for one kind of worker thread, limited to `share` of the service's quota.

    `create` returns None where there is no quota (nothing to keep) and logs a warning where
    the sub-group cannot be made; `enter()`, called in a worker thread, moves that thread in;
    `close()` removes the group once its threads have ended.
    """

    def __init__(self, quota: CpuQuota, path: Path, quota_us: int, period_us: int) -> None:
        self.quota = quota
        self.path = path
        self.quota_us = quota_us
        self.period_us = period_us
        self._lock = threading.Lock()
        self.entered = 0

    @classmethod
    def create(cls, name: str, share: float, *, quota: CpuQuota | None = None
               ) -> CpuGroup | None:
        """The sub-group `name` under this process's cgroup, or None."""
        quota = quota if quota is not None else cpu_quota()
        if quota is None or share >= 1.0:
            return None
        path = quota.own / name
        quota_us, period_us = _split(int(quota.quota_us * share), quota.period_us)
        try:
            path.mkdir(exist_ok=True)
            if quota.version == 2:
                (path / "cgroup.type").write_text("threaded")
                _enable_cpu(quota.own)
                (path / "cpu.max").write_text(f"{quota_us} {period_us}")
            else:
                (path / "cpu.cfs_period_us").write_text(str(period_us))
                (path / "cpu.cfs_quota_us").write_text(str(quota_us))
        except OSError as err:
            log.warning("CPU quota of %.2f cores: the lanes share it with every worker thread "
                        "(no sub-group %s: %s)", quota.cores, name, err.strerror or err)
            _remove(path)
            return None
        log.info("CPU quota of %.2f cores: %s limited to %.2f", quota.cores, name,
                 quota.cores * share)
        return cls(quota, path, quota_us, period_us)

    def enter(self) -> None:
        """Move the calling thread into the group (a worker thread's first step)."""
        target = self.path / ("cgroup.threads" if self.quota.version == 2 else "tasks")
        try:
            target.write_text(str(threading.get_native_id()))
        except OSError as err:
            log.warning("a worker thread stays in the service's CPU group: %s",
                        err.strerror or err)
            return
        with self._lock:
            self.entered += 1

    def close(self, wait_s: float = 2.0) -> None:
        """Remove the group once its threads have left it.

        A thread that Python has joined may still be the kernel's for a moment (its task leaves
        the cgroup only when it is reaped), and the kernel refuses to remove a group with tasks
        (EBUSY): so ask again for up to `wait_s` before leaving it behind.
        """
        deadline = time.monotonic() + wait_s
        while not _remove(self.path) and time.monotonic() < deadline:
            time.sleep(0.02)


MIN_QUOTA_US = 1000  # the kernel's smallest quota per period


def _split(quota_us: int, period_us: int) -> tuple[int, int]:
    """The sub-group's (quota, period): the same rate as `quota_us` per `period_us`, in periods
    up to ten times shorter (each quota at least 1 ms).

    The kernel does not line a sub-group's periods up with its parent's: with the parent's
    period, a group could spend its quota at the end of one of its periods and again at the
    start of the next, twice its share within one of the parent's periods, and the parent is
    stopped, event loop and all. In periods a tenth as long it overshoots by a tenth at most.
    """
    parts = max(1, min(10, quota_us // MIN_QUOTA_US))
    return max(MIN_QUOTA_US, quota_us // parts), period_us // parts


def _enable_cpu(directory: Path) -> None:
    control = directory / "cgroup.subtree_control"
    if "cpu" not in control.read_text().split():
        control.write_text("+cpu")


def _remove(path: Path) -> bool:
    """Remove a group's directory; False only while the kernel says it still has tasks."""
    try:
        os.rmdir(path)
    except OSError as exc:
        return exc.errno != errno.EBUSY
    return True
