"""The YOLOv8 plate detector with lotedge's letterbox and NMS, and the reader's detector choice."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lpr.engine import DEFAULT_PLATE_DET, ModelError, PlateDetector
from lpr.reader import PlateReader
from lpr.synthetic import render_scene


@pytest.fixture(scope="module")
def plate_detector() -> PlateDetector:
    """The shipped plate detector, one thread."""
    return PlateDetector(DEFAULT_PLATE_DET, threads=1, input_px=416)


def test_detector_finds_the_rendered_plate(plate_detector):
    # seed 3 renders a plate the detector recognises: 220x110 px at (210, 155) on 640x360
    boxes = plate_detector.detect(render_scene("8D79882", seed=3))
    assert len(boxes) == 1
    x1, y1, x2, y2 = boxes[0].bbox
    assert abs(x1 - 210) < 15 and abs(x2 - 430) < 15 and abs(y1 - 155) < 15 and abs(y2 - 265) < 15
    assert 0.3 < boxes[0].score <= 1.0


@pytest.mark.parametrize(("factor", "top", "left"), [(2.0, 0, 0), (0.5, 0, 0), (1.0, 40, 0),
                                                     (1.0, 0, 60)])
def test_letterbox_maps_boxes_back_to_image_coordinates(plate_detector, factor, top, left):
    # the same scene scaled, or padded top/bottom or left/right (other letterbox shapes)
    scene = render_scene("8D79882", seed=3)
    frame = cv2.resize(scene, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
    frame = cv2.copyMakeBorder(frame, top, top, left, left, cv2.BORDER_REFLECT)
    boxes = plate_detector.detect(frame)
    assert len(boxes) == 1
    x1, y1, x2, y2 = boxes[0].bbox
    tol = 15 * max(factor, 1.0)
    assert abs(x1 - (210 * factor + left)) < tol and abs(x2 - (430 * factor + left)) < tol
    assert abs(y1 - (155 * factor + top)) < tol and abs(y2 - (265 * factor + top)) < tol


def test_blank_frame_has_no_plates(plate_detector):
    assert plate_detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []


def test_missing_plate_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        PlateDetector(tmp_path / "nope.onnx")


def test_reader_rejects_an_unknown_detector():
    with pytest.raises(ValueError, match="detector"):
        PlateReader(detector="plates")


def test_text_only_reader_has_no_plate_detector_and_still_reads():
    reader = PlateReader(detector="text", threads=1)
    assert reader.plate_detector is None
    assert reader.read(render_scene("ABC1234", seed=1)).plate == "ABC1234"


def test_reader_reads_the_plate_the_plate_detector_found(reader):
    scene = render_scene("8D79882", seed=3)
    assert reader.plate_detector is not None and reader.plate_detector.detect(scene)
    read = reader.read(scene)
    assert read.plate == "8D79882"
    x1, y1, x2, y2 = read.bbox
    assert 205 <= x1 < x2 <= 435 and 150 <= y1 < y2 <= 270


def test_config_selects_the_detector_and_its_input_size():
    from appliance.config import LprSection

    text_only = PlateReader.from_config(LprSection(detector="text"))
    assert text_only.plate_detector is None
    assert PlateReader.from_config(LprSection()).plate_detector is not None  # the default
    yolo = PlateReader.from_config(LprSection(detector="yolo", plate_det_px=320))
    assert yolo.plate_detector is not None and yolo.plate_detector.input_px == 320


def _recorded_looks(reader):
    looks = []
    detect = reader.plate_detector.detect

    def spy(image, *, input_px=None, faint=None):
        looks.append(input_px or reader.plate_detector.input_px)
        return detect(image, input_px=input_px, faint=faint)

    reader.plate_detector.detect = spy
    return looks


def test_plate_detector_looks_again_larger_only_when_unsure():
    scene = render_scene("KM55FGH", seed=5)
    unsure = PlateReader(threads=1, plate_det_px=320, plate_det_retry_px=640, plate_sure=1.0)
    looks = _recorded_looks(unsure)
    assert unsure.read(scene).plate == "KM55FGH"
    assert looks == [320, 640]  # no read is ever 100 % sure: the second look happens
    sure = PlateReader(threads=1, plate_det_px=320, plate_det_retry_px=640, plate_sure=0.5)
    looks = _recorded_looks(sure)
    assert sure.read(scene).plate == "KM55FGH"
    assert looks == [320]


def test_config_carries_the_second_look_settings():
    from appliance.config import LprSection

    reader = PlateReader.from_config(LprSection(plate_det_px=320, plate_det_retry_px=640,
                                                plate_sure=0.7, plate_line_px=96))
    assert (reader.plate_detector.input_px, reader.plate_det_retry_px) == (320, 640)
    assert (reader.plate_sure, reader.plate_line_px) == (0.7, 96)
    with pytest.raises(ValueError, match="plate_det_retry_px"):
        LprSection(plate_det_retry_px=650)


def test_boxes_below_the_threshold_come_back_as_faint_ones_only_when_asked():
    """The plate the detector scores below its threshold is no plate box, but a faint one:
    asked for, it is handed back apart (at the plate), and the sure boxes stay the same."""
    scene = render_scene("8D79882", seed=3)
    picky = PlateDetector(DEFAULT_PLATE_DET, threads=1, input_px=416, conf_thresh=0.99,
                          faint_thresh=0.1)
    faint: list = []
    assert picky.detect(scene) == [] and picky.detect(scene, faint=faint) == []
    assert len(faint) == 1 and 0.1 <= faint[0].score < 0.99
    x1, y1, x2, y2 = faint[0].bbox
    assert abs(x1 - 210) < 15 and abs(x2 - 430) < 15 and abs(y1 - 155) < 15 and abs(y2 - 265) < 15
    usual = PlateDetector(DEFAULT_PLATE_DET, threads=1, input_px=416)
    faint = []
    assert usual.detect(scene, faint=faint) == usual.detect(scene)
    assert all(0.03 <= box.score < 0.2 for box in faint)


def test_the_plate_detectors_input_is_made_in_one_array(plate_detector):
    """The network input of a 720p frame at 640 px is 2.9 MB: made in place, the letterbox
    takes that and its uint8 canvas, not two float temporaries more; the values are the
    frame's RGB channels scaled to [0, 1] in the letterbox (grey 114 around it)."""
    import tracemalloc

    frame = np.random.default_rng(3).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    tracemalloc.start()
    try:
        blob, scale, left, top = plate_detector._letterbox(frame, input_px=640)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert blob.shape == (1, 3, 384, 640) and blob.dtype == np.float32
    assert blob.flags.c_contiguous and (scale, left, top) == (0.5, 0, 12)
    assert peak < blob.nbytes * 1.5, f"{peak} bytes at the peak for a {blob.nbytes}-byte input"
    assert np.allclose(blob[0, :, :12], 114 / 255) and np.allclose(blob[0, :, -12:], 114 / 255)
    shrunk = cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA)
    assert np.abs(blob[0, :, 12:372] - shrunk[:, :, ::-1].transpose(2, 0, 1) / 255.0).max() < 1e-6
