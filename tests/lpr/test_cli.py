"""`lotedge lpr read` and `lotedge lpr bench` on synthetic images."""

from __future__ import annotations

import json

import cv2
from typer.testing import CliRunner

from appliance.cli.main import app
from lpr.regions import region_by_code
from lpr.synthetic import render_scene

from .conftest import write_scenes


def test_read_json_prints_one_object_per_image(tmp_path):
    paths = write_scenes(tmp_path, plates=("ABC1234", "KM55FGH"))
    result = CliRunner().invoke(app, ["lpr", "read", *map(str, paths), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [r["plate"] for r in rows] == ["ABC1234", "KM55FGH"]
    assert [r["image"] for r in rows] == [str(p) for p in paths]
    for r in rows:
        assert set(r) == {"image", "plate", "confidence", "bbox", "ms"}
        assert 0 < r["confidence"] <= 1 and len(r["bbox"]) == 4 and r["ms"] > 0


def test_read_unreadable_image_is_an_input_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    result = CliRunner().invoke(app, ["lpr", "read", str(bad)])
    assert result.exit_code != 0
    assert "cannot read image" in str(result.exception)


def test_bench_scores_a_labelled_folder(tmp_path):
    for i, (plate, label) in enumerate([("ABC1234", "ABC1234"), ("7XYZ123", "7XYZ128")]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), render_scene(plate, seed=i))
        (tmp_path / f"{i}.txt").write_text(f"{i}.png\t200\t150\t220\t110\t{label}\n")
    result = CliRunner().invoke(app, ["lpr", "bench", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["images"] == 2 and figures["exact"] == 1
    assert figures["exact_accuracy"] == 0.5
    # the mislabelled image reads 6 of its 7 characters right
    assert abs(figures["char_accuracy"] - (1 + 6 / 7) / 2) < 1e-3
    assert figures["median_ms"] > 0


def test_read_region_option_chooses_the_plate_format(tmp_path):
    paths = write_scenes(tmp_path, plates=("OKL1235",))
    rows = {}
    for region in (["--region", "us"], ["--region", "br"], ["-r", "eu", "-r", "br"]):
        result = CliRunner().invoke(app, ["lpr", "read", str(paths[0]), "--json", *region])
        assert result.exit_code == 0, result.output
        rows[" ".join(region)] = json.loads(result.output)["plate"]
    # the US writes one glyph for O and 0 (as 0); Brazil's LLLDDDD keeps the letter
    assert rows == {"--region us": "0KL1235", "--region br": "OKL1235", "-r eu -r br": "OKL1235"}


def test_read_unknown_region_is_a_one_line_input_error(tmp_path):
    paths = write_scenes(tmp_path, plates=("ABC1234",))
    result = CliRunner().invoke(app, ["lpr", "read", str(paths[0]), "--region", "xx"])
    assert result.exit_code != 0
    assert "unknown region code 'xx'" in str(result.exception)


def test_bench_part_splits_by_sorted_name_and_counts_o_and_0_alike(tmp_path):
    from lpr.bench import load_labels, run_bench, split_items

    # labels as the benchmark writes them, one with O where the plate prints 0
    for i, (plate, label) in enumerate([("ABC1234", "ABC1234"), ("7XYZ123", "7XYZ123"),
                                        ("KM50FGH", "KM5OFGH")]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), render_scene(plate, seed=i))
        (tmp_path / f"{i}.txt").write_text(f"{i}.png\t200\t150\t220\t110\t{label}\n")
    items = load_labels(tmp_path)
    assert [x.image.name for x in split_items(items, "dev")] == ["0.png", "2.png"]
    assert [x.image.name for x in split_items(items, "held-out")] == ["1.png"]
    from lpr.reader import PlateReader

    result = run_bench(PlateReader(threads=1, regions=region_by_code("uk") + region_by_code(
        "us")), split_items(items, "dev"))
    assert (result.exact, result.exact_o0) == (1, 2)
    result = CliRunner().invoke(app, ["lpr", "bench", str(tmp_path), "--part", "held-out",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["images"] == 1


def test_lane_bench_scores_the_lanes_burst_and_vote_per_photo(tmp_path):
    """The lane figures of `make bench` go through the lane's own burst: a sure read costs one
    frame, an unsure one two agreeing frames, an empty scene two; the vote's confidence then
    decides right, wrong or no plate at each `min_confidence`."""
    import numpy as np

    from lpr.bench import Labelled, run_lane_bench
    from lpr.reader import FrameRead

    # each photo a flat grey whose level names what the scripted reader reads there
    script = {10: ("AAA111", 0.97), 20: ("BBB222", 0.45), 30: ("XXX999", 0.97), 40: (None, 0.0)}
    truths = {10: "AAA111", 20: "BBB222", 30: "CCC333", 40: "DDD444"}
    items = []
    for level, plate in truths.items():
        path = tmp_path / f"{level}.png"
        cv2.imwrite(str(path), np.full((40, 60, 3), level, np.uint8))
        items.append(Labelled(image=path, plate=plate))

    class Scripted:
        def read(self, frame, search_frame=True, near=None):
            plate, conf = script[int(frame[0, 0, 0])]
            return FrameRead(plate=plate, confidence=conf, bbox=None)

    lane = run_lane_bench(Scripted(), items, burst_frames=5)
    assert lane.frames == (1 + 2 + 1 + 2) / 4
    assert lane.at(0.5) == (1, 1, 2)  # the unsure right plate is a no read at 0.5
    assert lane.at(0.4) == (2, 1, 1)
