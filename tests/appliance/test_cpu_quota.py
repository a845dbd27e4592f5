"""The CPU quota and the plate readers' share of it (cgroup v1 and v2)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from appliance.host.cpu_quota import POLLERS, READERS, CpuGroup, CpuQuota, cpu_quota, usable_cores

V1 = Path("/sys/fs/cgroup/cpu")


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_v1_quota_is_the_tightest_of_the_group_and_its_ancestors(tmp_path):
    root, proc = tmp_path / "cg", tmp_path / "cgroup"
    proc.write_text("5:memory:/x\n4:cpu,cpuacct:/lot/svc\n0::/elsewhere\n")
    _tree(root, {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000",
                 "cpu,cpuacct/lot/cpu.cfs_quota_us": "50000", "cpu,cpuacct/lot/cpu.cfs_period_us":
                 "100000", "cpu,cpuacct/lot/svc/cpu.cfs_quota_us": "120000",
                 "cpu,cpuacct/lot/svc/cpu.cfs_period_us": "100000"})
    assert cpu_quota(root=root, proc_cgroup=proc) == CpuQuota(
        version=1, own=root / "cpu,cpuacct/lot/svc", quota_us=50000, period_us=100000)
    (root / "cpu,cpuacct/lot/cpu.cfs_quota_us").write_text("-1")
    quota = cpu_quota(root=root, proc_cgroup=proc)
    assert quota is not None and quota.cores == 1.2
    (root / "cpu,cpuacct/lot/svc/cpu.cfs_quota_us").write_text("-1")
    assert cpu_quota(root=root, proc_cgroup=proc) is None  # no quota anywhere


def test_v2_quota_from_cpu_max(tmp_path):
    root, proc = tmp_path / "cg", tmp_path / "cgroup"
    proc.write_text("0::/system.slice/lotedge.service\n")
    _tree(root, {"cgroup.controllers": "cpuset cpu io memory pids",
                 "system.slice/cpu.max": "max 100000",
                 "system.slice/lotedge.service/cpu.max": "25000 50000\n"})
    quota = cpu_quota(root=root, proc_cgroup=proc)
    assert quota == CpuQuota(version=2, own=root / "system.slice/lotedge.service",
                             quota_us=25000, period_us=50000)
    assert quota.cores == 0.5
    (root / "system.slice/lotedge.service/cpu.max").write_text("max 100000")
    assert cpu_quota(root=root, proc_cgroup=proc) is None


def test_no_cgroup_to_read_means_no_quota(tmp_path):
    assert cpu_quota(root=tmp_path, proc_cgroup=tmp_path / "missing") is None
    (tmp_path / "cgroup").write_text("0::/\n")  # v2 named, but no cgroup2 mounted there
    assert cpu_quota(root=tmp_path / "nothing", proc_cgroup=tmp_path / "cgroup") is None


def test_usable_cores_are_the_quota_rounded_up_within_the_cpus_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})

    def quota(us: int) -> CpuQuota:
        return CpuQuota(version=1, own=tmp_path, quota_us=us, period_us=100_000)

    assert usable_cores(None) == 4
    assert usable_cores(quota(50_000)) == 1  # half a core keeps one reader busy, not four
    assert usable_cores(quota(150_000)) == 2
    assert usable_cores(quota(1_000)) == 1
    assert usable_cores(quota(800_000)) == 4  # never more than the CPUs it may run on


def test_v2_reader_group_is_a_threaded_child_with_its_share(tmp_path):
    """What the kernel's cgroup v2 interface is given: a threaded child, the cpu controller
    enabled for it, its cpu.max, and each reader thread's id in cgroup.threads."""
    own = tmp_path / "lotedge.service"
    _tree(own, {"cgroup.subtree_control": "memory\n"})
    group = CpuGroup.create(READERS, 0.75, quota=CpuQuota(version=2, own=own, quota_us=50000,
                                                          period_us=100000))
    assert group is not None and group.path == own / READERS
    assert (own / READERS / "cgroup.type").read_text() == "threaded"
    assert (own / "cgroup.subtree_control").read_text() == "+cpu"
    # 0.75 of 50 ms per 100 ms, in periods a tenth as long (see _split)
    assert (own / READERS / "cpu.max").read_text() == "3750 10000"
    thread = threading.Thread(target=group.enter)
    thread.start()
    thread.join()
    assert (own / READERS / "cgroup.threads").read_text() == str(thread.native_id)
    assert group.entered == 1


def test_by_default_the_pollers_get_no_sub_group_of_a_quota(tmp_path):
    """A poller the kernel stops for its share while it holds the GIL stops the event loop
    with it; a bus's line paces its poller anyway. The readers keep theirs."""
    from appliance.config import DevicesSection, LprSection

    quota = CpuQuota(version=1, own=tmp_path, quota_us=50000, period_us=100000)
    assert CpuGroup.create(POLLERS, DevicesSection().poller_cpu_share, quota=quota) is None
    assert not (tmp_path / POLLERS).exists()
    assert CpuGroup.create(READERS, LprSection().reader_cpu_share, quota=quota) is not None


def test_no_quota_or_a_share_of_all_creates_nothing(tmp_path):
    assert CpuGroup.create(READERS, 1.0, quota=CpuQuota(version=1, own=tmp_path,
                                                        quota_us=50000, period_us=100000)) is None
    assert not (tmp_path / READERS).exists()


def test_an_unwritable_cgroup_is_a_warning_and_no_group(tmp_path, caplog):
    own = tmp_path / "missing" / "svc"  # cannot be made: the parent does not exist
    quota = CpuQuota(version=1, own=own, quota_us=50000, period_us=100000)
    assert CpuGroup.create(READERS, 0.75, quota=quota) is None
    assert "the lanes share it with every worker thread" in caplog.text


def test_a_group_whose_last_thread_is_still_being_reaped_is_removed_when_it_is(tmp_path,
                                                                              monkeypatch):
    """A joined thread's task may stay in the group a moment: the kernel answers EBUSY."""
    import errno

    group = CpuGroup.create(READERS, 0.75, quota=CpuQuota(version=1, own=tmp_path,
                                                          quota_us=50000, period_us=100000))
    assert group is not None and group.path.is_dir()
    real_rmdir, refusals = os.rmdir, [2]

    def rmdir(path):
        if refusals[0]:
            refusals[0] -= 1
            raise OSError(errno.EBUSY, "Device or resource busy")
        for child in Path(path).iterdir():  # a real cgroup's files go with it
            child.unlink()
        real_rmdir(path)

    monkeypatch.setattr(os, "rmdir", rmdir)
    group.close()
    assert not group.path.exists() and refusals == [0]


CHILD = textwrap.dedent("""
    import json, os, sys, threading, time
    sys.path.insert(0, os.getcwd())
    from concurrent.futures import ThreadPoolExecutor
    from appliance.host.cpu_quota import READERS, CpuGroup, cpu_quota, usable_cores

    group = CpuGroup.create(READERS, 0.75)
    def where():
        with open(f"/proc/self/task/{threading.get_native_id()}/cgroup") as f:
            return next(l.split(":", 2)[2].strip() for l in f if "cpu" in l.split(":")[1].split(","))
    with ThreadPoolExecutor(1, initializer=group.enter) as pool:
        reader_at = pool.submit(where).result()
    quota = (group.path / "cpu.cfs_quota_us").read_text().strip()
    period = (group.path / "cpu.cfs_period_us").read_text().strip()
    print(json.dumps({"quota": cpu_quota().quota_us, "reader": reader_at, "loop": where(),
                      "reader_quota": int(quota), "reader_period": int(period),
                      "cores": usable_cores(cpu_quota())}))
    group.close()
    print(json.dumps({"removed": not group.path.exists()}))
""")


@pytest.mark.skipif(not (V1 / "cgroup.procs").exists() or not os.access(V1, os.W_OK),
                    reason="needs a writable cgroup v1 cpu controller (root)")
def test_reader_threads_get_their_share_of_a_real_quota(tmp_path):
    """On the kernel's own cgroup v1 controller: a process limited to half a core puts its reader
    thread in a sub-group limited to 0.75 of that, and its other threads stay where they were."""
    from bench.bench_fullload import _limited  # the full-load bench's half-core cgroup

    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = _limited([sys.executable, str(script)], 50_000)
    assert proc.returncode == 0, proc.stderr
    first, second = (json.loads(line) for line in proc.stdout.splitlines())
    name = f"/lotedge-bench-{os.getpid()}"
    assert first == {"quota": 50000, "reader": f"{name}/{READERS}", "loop": name,
                     "reader_quota": 3750, "reader_period": 10000, "cores": 1}
    assert second == {"removed": True}


def test_sensor_bus_pollers_run_the_wiring_hook_in_their_threads():
    """The service moves the spot-sensor bus reader threads into the pollers' CPU group
    (`lotedge-pollers`) through this hook: each bus thread runs it before it polls."""
    from appliance.core.layout import SpotDef
    from appliance.core.occupancy import OccupancySettings
    from appliance.core.types import SpotType
    from drivers.health import HealthRegistry
    from drivers.serial_sim import SimulatedModbusBus
    from drivers.spot_sensors import BusSpec, SpotSensorArray

    sims = [SimulatedModbusBus(_urm14(), [1], distance_cm=300).start() for _ in range(2)]
    entered: list[tuple[str, int]] = []
    try:
        array = SpotSensorArray(
            [BusSpec(id=f"b{i}", port=sim.path, protocol="modbus") for i, sim in enumerate(sims)],
            [SpotDef(id=f"s{i}", level="L1", type=SpotType.REGULAR, sensor=f"b{i}:1")
             for i in range(2)],
            settings_for=lambda _: OccupancySettings(), health=HealthRegistry())
        array.on_worker_thread = lambda: entered.append(
            (threading.current_thread().name, threading.get_native_id()))
        loop = __import__("asyncio").new_event_loop()
        try:
            array.start(loop)
            deadline = time.monotonic() + 5
            while len(entered) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            for worker in array.workers:
                worker.stop()
        finally:
            loop.close()
    finally:
        for sim in sims:
            sim.stop()
    assert sorted(name for name, _ in entered) == ["port:b0", "port:b1"]


def _urm14():
    from appliance.core.register_maps import PRESETS

    return PRESETS["dfrobot-urm14"]


def test_a_sub_group_keeps_its_rate_in_shorter_periods():
    """A sub-group's periods do not line up with its parent's: shorter ones keep it from
    spending two periods' quota within one of the parent's."""
    from appliance.host.cpu_quota import _split

    assert _split(37_500, 100_000) == (3_750, 10_000)
    assert _split(7_500, 100_000) == (1_071, 14_285)  # at least 1 ms a period
    assert _split(800, 100_000) == (1_000, 100_000)  # below 1 ms: one period, 1 ms


async def test_the_running_service_has_worker_threads_hand_the_gil_over_sooner(tmp_path):
    """A worker thread's Python (a read's pre- and post-processing, a poll's framing) is asked
    to give the GIL up after 1 ms instead of CPython's 5, while the service runs; its stop
    restores the process's setting."""
    from appliance.config import load_config
    from appliance.service import Service
    from tests.conftest import write_lot

    before = sys.getswitchinterval()
    service = Service(load_config(write_lot(tmp_path)), simulate=True, api=False)
    await service.start()
    try:
        assert sys.getswitchinterval() == pytest.approx(0.001)
    finally:
        await service.stop()
    assert sys.getswitchinterval() == pytest.approx(before)
