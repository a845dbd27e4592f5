"""Evidence files for decided reads and their purge by age and by size."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lpr.retention import EvidenceError, purge, save_evidence

DAY_S = 86400.0
NOW_S = 1_790_000_000.0


def _save(root: Path, age_days: float, plate: str = "ABC123"):
    when = NOW_S - age_days * DAY_S
    frame = np.random.default_rng(int(age_days * 10)).integers(0, 255, (120, 160, 3), np.uint8)
    saved = save_evidence(root, lane_id="in-1", plate=plate, frame=frame,
                          crop=frame[40:80, 40:120], when_s=when)
    for p in (saved.frame_path, saved.crop_path):
        os.utime(p, (when, when))
    return saved


def test_save_writes_crop_and_frame_named_by_time_lane_and_plate(tmp_path):
    saved = _save(tmp_path, 0)
    assert Path(saved.frame_path).is_file() and Path(saved.crop_path).is_file()
    assert "in-1_ABC123_crop" in saved.crop_path
    no_crop = save_evidence(tmp_path, lane_id="a/b", plate=None,
                            frame=np.zeros((10, 10, 3), np.uint8), crop=None, when_s=NOW_S)
    assert no_crop.crop_path is None and "a_b_noread_frame" in no_crop.frame_path


def test_purge_by_age_keeps_recent_evidence(tmp_path):
    old = _save(tmp_path, 40)
    recent = _save(tmp_path, 2)
    report = purge(tmp_path, now_s=NOW_S, retention_days=30, max_bytes=10**9)
    assert report.removed_files == 2
    assert not Path(old.frame_path).exists() and not Path(old.crop_path).exists()
    assert Path(recent.frame_path).exists() and Path(recent.crop_path).exists()
    assert not Path(old.frame_path).parent.exists()  # the emptied day folder is gone


def test_purge_by_size_removes_oldest_first(tmp_path):
    saved = [_save(tmp_path, age) for age in (5, 4, 3, 2, 1)]
    sizes = [Path(p).stat().st_size for s in saved for p in (s.frame_path, s.crop_path)]
    budget = sum(sizes[-4:])  # room for the two newest reads only
    report = purge(tmp_path, now_s=NOW_S, retention_days=30, max_bytes=budget)
    assert report.removed_files == 6
    assert report.kept_bytes == budget
    assert [Path(s.frame_path).exists() for s in saved] == [False, False, False, True, True]


def test_purge_of_missing_folder_is_a_no_op(tmp_path):
    assert purge(tmp_path / "none", now_s=NOW_S, retention_days=1, max_bytes=0).removed_files == 0


def test_unwritable_storage_is_an_evidence_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EvidenceError):
        save_evidence(blocker, lane_id="in-1", plate="A", frame=np.zeros((8, 8, 3), np.uint8),
                      crop=None, when_s=NOW_S)
