"""The CPU quota and the plate readers' share of it (cgroup v1 and v2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from appliance.host.cpu_quota import SUBGROUP, CpuQuota, ReaderGroup, cpu_quota

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


def test_v2_reader_group_is_a_threaded_child_with_its_share(tmp_path):
    """What the kernel's cgroup v2 interface is given: a threaded child, the cpu controller
    enabled for it, its cpu.max, and each reader thread's id in cgroup.threads."""
    own = tmp_path / "lotedge.service"
    _tree(own, {"cgroup.subtree_control": "memory\n"})
    group = ReaderGroup.create(0.75, quota=CpuQuota(version=2, own=own, quota_us=50000,
                                                    period_us=100000))
    assert group is not None and group.path == own / SUBGROUP
    assert (own / SUBGROUP / "cgroup.type").read_text() == "threaded"
    assert (own / "cgroup.subtree_control").read_text() == "+cpu"
    assert (own / SUBGROUP / "cpu.max").read_text() == "37500 100000"
    thread = threading.Thread(target=group.enter)
    thread.start()
    thread.join()
    assert (own / SUBGROUP / "cgroup.threads").read_text() == str(thread.native_id)
    assert group.entered == 1


def test_no_quota_or_a_share_of_all_creates_nothing(tmp_path):
    assert ReaderGroup.create(1.0, quota=CpuQuota(version=1, own=tmp_path, quota_us=50000,
                                                  period_us=100000)) is None
    assert not (tmp_path / SUBGROUP).exists()


def test_an_unwritable_cgroup_is_a_warning_and_no_group(tmp_path, caplog):
    own = tmp_path / "missing" / "svc"  # cannot be made: the parent does not exist
    quota = CpuQuota(version=1, own=own, quota_us=50000, period_us=100000)
    assert ReaderGroup.create(0.75, quota=quota) is None
    assert "plate reads share it with the lanes" in caplog.text


CHILD = textwrap.dedent("""
    import json, threading, time
    from concurrent.futures import ThreadPoolExecutor
    from appliance.host.cpu_quota import ReaderGroup, cpu_quota

    group = ReaderGroup.create(0.75)
    def where():
        with open(f"/proc/self/task/{threading.get_native_id()}/cgroup") as f:
            return next(l.split(":", 2)[2].strip() for l in f if "cpu" in l.split(":")[1].split(","))
    with ThreadPoolExecutor(1, initializer=group.enter) as pool:
        reader_at = pool.submit(where).result()
    quota = (group.path / "cpu.cfs_quota_us").read_text().strip()
    print(json.dumps({"quota": cpu_quota().quota_us, "reader": reader_at, "loop": where(),
                      "reader_quota": int(quota)}))
    group.close()
    print(json.dumps({"removed": not group.path.exists()}))
""")


@pytest.mark.skipif(not (V1 / "cgroup.procs").exists() or not os.access(V1, os.W_OK),
                    reason="needs a writable cgroup v1 cpu controller (root)")
def test_reader_threads_get_their_share_of_a_real_quota(tmp_path):
    """On the kernel's own cgroup v1 controller: a process limited to half a core puts its reader
    thread in a sub-group limited to 0.75 of that, and its other threads stay where they were."""
    group = V1 / f"lotedge-test-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text("50000")
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        proc = subprocess.run(["sh", "-c", f"echo $$ > {group / 'cgroup.procs'} && exec "
                               f"{sys.executable} {script}"], capture_output=True, text=True,
                              timeout=60, cwd=Path(__file__).resolve().parents[2])
        assert proc.returncode == 0, proc.stderr
        first, second = (json.loads(line) for line in proc.stdout.splitlines())
        name = f"/lotedge-test-{os.getpid()}"
        assert first == {"quota": 50000, "reader": f"{name}/{SUBGROUP}", "loop": name,
                         "reader_quota": 37500}
        assert second == {"removed": True}
    finally:
        for _ in range(50):
            try:
                for sub in group.iterdir():
                    if sub.is_dir():
                        sub.rmdir()
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)
