"""The ONNX detector + recogniser on synthetic plate scenes (real sessions, small images)."""

from __future__ import annotations

import contextlib

import cv2
import numpy as np
import pytest

from lpr.engine import ModelError, TextDetector, TextRecognizer, crop_box
from lpr.reader import PlateReader
from lpr.synthetic import render_scene


@pytest.mark.parametrize(("plate", "seed"), [("ABC1234", 1), ("7XYZ123", 2), ("8D79882", 3)])
def test_reader_reads_rendered_plates(reader, plate, seed):
    scene = render_scene(plate, seed=seed)
    read = reader.read(scene)
    assert read.plate == plate
    assert 0.8 < read.confidence <= 1.0
    x1, y1, x2, y2 = read.bbox
    # the plate is rendered centred at (210..430, 155..265) on a 640x360 scene
    assert 200 <= x1 < x2 <= 440 and 150 <= y1 < y2 <= 270
    assert read.crop is not None and read.crop.shape[1] > read.crop.shape[0]
    assert read.ms > 0


def test_reader_finds_a_plate_off_centre(reader):
    scene = render_scene("KM55FGH", seed=4, at=(40, 250), plate_width_px=160)
    read = reader.read(scene)
    assert read.plate == "KM55FGH"
    assert read.bbox[0] < 200 and read.bbox[1] > 230


def test_blank_scene_is_no_read(reader):
    read = reader.read(np.full((240, 320, 3), 128, np.uint8))
    assert read.plate is None and read.bbox is None and read.confidence == 0.0


def test_degenerate_images_are_no_reads(reader):
    assert reader.read(np.zeros((4, 4, 3), np.uint8)).plate is None
    assert reader.read(None).plate is None


def test_detector_boxes_cover_the_text_and_recogniser_reads_the_crop():
    det = TextDetector(threads=1, max_side_px=640, pad_along=0.25)
    rec = TextRecognizer(threads=1)
    scene = render_scene("AB12CD", seed=5)
    boxes = det.detect(scene)
    assert boxes
    box = max(boxes, key=lambda b: b.score)
    reads = rec.recognize([crop_box(scene, box.corners)])
    assert reads[0].text == "AB12CD"
    assert all(0 < p <= 1 for p in reads[0].char_conf)


def test_recogniser_emits_only_plate_characters(reader):
    scene = render_scene("AB-12", seed=6)
    read = reader.read(scene)
    assert read.raw and set(read.raw) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        TextDetector(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load model"):
        TextRecognizer(bad)


def test_two_recognisers_vote_and_the_second_can_be_turned_off(tmp_path):
    from lpr.reader import PlateReader

    both = PlateReader(detector="text", threads=1)
    alone = PlateReader(detector="text", threads=1, second_rec_model="none")
    assert len(both.recognizers) == 2 and len(alone.recognizers) == 1
    scene = render_scene("7XYZ123", seed=2)
    for reader in (both, alone):
        read = reader.read(scene)
        assert read.plate == "7XYZ123" and read.confidence > 0.8
    with pytest.raises(ModelError, match="model file not found"):
        PlateReader(detector="text", threads=1, second_rec_model=tmp_path / "missing.onnx")


def test_the_second_recogniser_reads_only_lines_the_first_is_unsure_of():
    from lpr.reader import PlateReader

    reader = PlateReader(detector="text", threads=1)
    calls = []
    second = reader.recognizers[1]
    original = second.recognize
    second.recognize = lambda crops: calls.append(len(crops)) or original(crops)
    scene = render_scene("7XYZ123", seed=2)
    reader.second_rec_below = 1.01  # always
    assert reader.read(scene).plate == "7XYZ123"
    always = len(calls)
    calls.clear()
    reader.second_rec_below = 0.0  # never: every first read counts as sure
    assert reader.read(scene).plate == "7XYZ123"
    assert always > 0 and calls == []


def test_shipped_plate_recogniser_emits_only_the_plate_alphabet_and_reads_a_line():
    from lpr.engine import DEFAULT_DICT, DEFAULT_REC

    rec = TextRecognizer(DEFAULT_REC, DEFAULT_DICT)
    # blank + 0-9 + A-Z + space: the dictionary and the model's output agree
    assert rec.classes[1:-1] == list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    out = rec.session.run(None, {rec.input_name: rec._blob(np.zeros((40, 200, 3), np.uint8))})
    assert out[0].shape[-1] == len(rec.classes)
    scene = render_scene("5TQY867", seed=6)
    line = scene[170:250, 220:420]  # the rendered text line, stretched 1.5x as the reader does
    line = cv2.resize(line, (int(line.shape[1] * 1.5), line.shape[0]))
    assert rec.recognize([line])[0].text == "5TQY867"


def test_second_recogniser_outweighs_the_first_outside_the_us(reader):
    from lpr.regions import region_by_code

    # the shipped first recogniser was fine-tuned on US plates only
    try:
        reader.regions = region_by_code("br")
        assert reader._second_weight() == reader.second_rec_weight == 1.3
        # a weighted vote is still a confidence between 0 and 1
        read = reader.read(render_scene("OKL1235", seed=2))
        assert read.plate == "OKL1235" and 0.5 < read.confidence <= 1.0
        reader.regions = region_by_code("us")
        assert reader._second_weight() == 1.0
        reader.regions = region_by_code("br") + region_by_code("us")
        assert reader._second_weight() == 1.0
    finally:
        reader.regions = region_by_code("us")


def test_second_rec_weight_is_config_with_limits():
    from appliance.config import LprSection

    assert PlateReader.from_config(LprSection(second_rec_weight=2.0,
                                              detector="text")).second_rec_weight == 2.0
    with pytest.raises(ValueError, match="second_rec_weight"):
        LprSection(second_rec_weight=5)


def test_a_bursts_quick_look_skips_the_larger_looks_and_the_last_resort(reader):
    """A frame with no plate (grey wall): behind the plate detector a full read looks at the
    first size, then at plate_det_retry_px, then, as the last resort, searches the whole frame
    with the text detector once, at det_retry_max_side_px (the text-only pipeline searches at
    det_max_side_px, then det_retry_max_side_px); with plate_det_search_px set the last resort
    is a third plate-detector look at that size, and the whole frame is never text-searched.
    A burst's quick look (a later frame of a scene whose first frame gave nothing) takes the
    first look only."""
    wall = np.full((720, 1280, 3), 110, np.uint8)

    def whole_frame_sizes(plate_reader, **options):
        sizes, detector, detect = [], plate_reader.detector, plate_reader.detector.detect

        def counting(image, *, max_side_px=None, upscale=False):
            if image.shape[:2] == wall.shape[:2]:
                sizes.append(max_side_px or detector.max_side_px)
            return detect(image, max_side_px=max_side_px, upscale=upscale)

        detector.detect = counting
        try:
            assert plate_reader.read(wall, **options).plate is None
        finally:
            del detector.detect
        return sizes

    def plate_looks(plate_reader, **options):
        looks, plates = [], plate_reader.plate_detector
        detect_plates = plates.detect
        plates.detect = lambda image, input_px=None, faint=None: \
            looks.append(input_px) or detect_plates(image, input_px=input_px, faint=faint)
        try:
            plate_reader.read(wall, **options)
        finally:
            del plates.detect
        return looks

    assert (reader.plate_det_retry_px, reader.plate_det_search_px) == (640, 0)
    assert whole_frame_sizes(reader) == [896]
    assert plate_looks(reader) == [None, 640]
    assert whole_frame_sizes(reader, search_frame=False) == []  # a burst's later frame
    assert plate_looks(reader, search_frame=False) == [None]  # the first size only
    look_last = PlateReader(threads=1, plate_det_search_px=800)
    assert whole_frame_sizes(look_last) == []
    assert plate_looks(look_last) == [None, 640, 800]
    assert plate_looks(look_last, search_frame=False) == [None]
    assert whole_frame_sizes(PlateReader(threads=1, detector="text")) == [640, 896]


def test_plate_det_search_px_is_config_with_limits():
    from appliance.config import LprSection

    assert LprSection().plate_det_search_px == 0  # the text search
    assert PlateReader.from_config(LprSection(plate_det_search_px=800)).plate_det_search_px == 800
    for bad in (64, 810, 1312, 640, 416):  # not above both looks' sizes, off the grid, too large
        with pytest.raises(ValueError, match="plate_det_search_px"):
            LprSection(plate_det_search_px=bad)
    with pytest.raises(ValueError, match="plate_det_search_px"):
        LprSection(plate_det_retry_px=960, plate_det_search_px=800)
    assert LprSection(plate_det_retry_px=0, plate_det_search_px=640).plate_det_search_px == 640


def test_a_bursts_later_frame_is_read_where_the_earlier_one_found_the_plate(reader):
    """A car standing on the loop: a later frame of its burst is read first where an earlier
    frame found the plate (the plate detector's box, or a window around the text line the
    whole-frame text search found), without searching the frame again; where that spot holds no
    plate (the scene changed) the frame is searched as usual."""
    scene = render_scene("7XYZ123", seed=2)
    later = np.roll(scene, (3, -4), axis=(0, 1))  # the next frame: the car has settled a little
    wall = np.full_like(scene, 110)

    def frame_searches(plate_reader, image, **options):
        calls, plates, detector = [], plate_reader.plate_detector, plate_reader.detector

        def whole_frame(image_, *, max_side_px=None, upscale=False):
            if image_.shape[:2] == image.shape[:2]:
                calls.append("text")
            return type(detector).detect(detector, image_, max_side_px=max_side_px,
                                         upscale=upscale)

        detector.detect = whole_frame
        if plates is not None:
            plates.detect = lambda image_, input_px=None, faint=None: \
                calls.append(f"plates{input_px or ''}") or type(plates).detect(
                    plates, image_, input_px=input_px, faint=faint)
        try:
            return plate_reader.read(image, **options), calls
        finally:
            del detector.detect
            if plates is not None:
                del plates.detect

    for plate_reader in (reader, PlateReader(threads=1, plate_det_search_px=800),
                         PlateReader(threads=1, detector="text")):
        first, searched = frame_searches(plate_reader, scene)
        assert first.plate == "7XYZ123" and searched
        assert (first.plate_box is not None) == (plate_reader.plate_detector is not None)
        again, searched = frame_searches(plate_reader, later, near=first)
        assert (again.plate, searched) == ("7XYZ123", [])
        moved, searched = frame_searches(plate_reader, wall, near=first)
        # nothing there: the full search ran, down to its last resort
        assert moved.plate is None and searched[-1] == (
            "plates800" if plate_reader.plate_det_search_px and plate_reader.plate_detector
            else "text")


def test_a_plate_the_detector_half_saw_is_read_before_the_last_resort(reader):
    """No plate box at or above the detector's threshold, but a faint one where the plate is:
    the faint box is read, and as that read is good no last resort runs (neither the plate
    detector's largest look nor the whole-frame text search)."""
    from lpr.engine import PlateBox

    scene = render_scene("8D79882", seed=3)  # the plate: 220x110 px at (210, 155)
    looked, searched = [], []

    def half_seeing(image, *, input_px=None, faint=None):
        looked.append((faint is not None, input_px))
        if faint is not None:
            faint.append(PlateBox(bbox=(205, 150, 435, 270), score=0.08))
        return []

    def whole_frame(image, *, max_side_px=None, upscale=False):
        if image.shape[:2] == scene.shape[:2]:
            searched.append(max_side_px)
        return type(reader.detector).detect(reader.detector, image, max_side_px=max_side_px,
                                            upscale=upscale)

    reader.plate_detector.detect, reader.detector.detect = half_seeing, whole_frame
    try:
        read = reader.read(scene)
        assert (read.plate, searched, looked) == ("8D79882", [], [(True, None), (True, 640)])
        reader.read_faint = False  # the option off: no faint boxes, the last resort runs
        looked.clear()
        assert reader.read(scene).plate == "8D79882" and searched == [896]  # the text search
        assert looked == [(False, None), (False, 640)]
        reader.plate_det_search_px = 800  # the plate detector's look as the last resort
        looked.clear()
        searched.clear()
        assert reader.read(scene).plate is None  # (this stub's detector sees no plate at all)
        assert (searched, looked) == ([], [(False, None), (False, 640), (False, 800)])
    finally:
        reader.read_faint, reader.plate_det_search_px = True, 0
        del reader.plate_detector.detect, reader.detector.detect


def test_lane_threads_sharing_the_reader_each_search_at_their_own_sizes():
    """Lane reader threads share one PlateReader: one thread's larger whole-frame retry must
    not change the size another thread's search runs at (the retry used to set the shared
    detector's max_side_px for its duration: a read started meanwhile searched at 896 px and
    skipped its retry, and two overlapping retries could leave 896 px set for good). Both
    lanes' first passes run side by side; each retry then runs alone (see `_RunGate`)."""
    import threading

    reader = PlateReader(threads=1, detector="text")  # the pipeline with the 896 px retry
    wall = np.full((720, 1280, 3), 110, np.uint8)
    detector, detect = reader.detector, reader.detector.detect
    sizes: dict[str, list[int]] = {"a": [], "b": []}
    first_pass = {"a": threading.Event(), "b": threading.Event()}
    met: list[bool] = []

    def gated(image, *, max_side_px=None, upscale=False):
        who = threading.current_thread().name
        if image.shape[:2] == wall.shape[:2]:
            size = max_side_px or detector.max_side_px
            sizes[who].append(size)
            if size == 640:  # both lanes in their first pass at once
                first_pass[who].set()
                met.append(first_pass["b" if who == "a" else "a"].wait(60))
        return detect(image, max_side_px=max_side_px, upscale=upscale)

    _run_with_detect(detector, gated, [threading.Thread(target=reader.read, args=(wall,), name=n)
                                       for n in ("a", "b")])
    assert met == [True, True]
    assert sizes == {"a": [640, 896], "b": [640, 896]}
    assert detector.max_side_px == 640


LAST_RESORTS = ("text", "plates")  # the whole-frame text search; the plate detector at 800 px


@contextlib.contextmanager
def _last_resort_as(reader, kind: str, wrap, frame_shape):
    """The reader with `kind` as its last resort, each run of that going through
    `wrap(run)` (`run()`: the real one); every other detector run is the real one."""
    detector, plates = reader.detector, reader.plate_detector
    search_px = 800

    def text(image, *, max_side_px=None, upscale=False):
        def run():
            return type(detector).detect(detector, image, max_side_px=max_side_px,
                                         upscale=upscale)
        return wrap(run) if kind == "text" and image.shape[:2] == frame_shape else run()

    def plate_look(image, input_px=None, faint=None):
        def run():
            return type(plates).detect(plates, image, input_px=input_px, faint=faint)
        return wrap(run) if kind == "plates" and input_px == search_px else run()

    detector.detect, plates.detect = text, plate_look
    was = reader.plate_det_search_px
    reader.plate_det_search_px = search_px if kind == "plates" else 0
    try:
        yield
    finally:
        reader.plate_det_search_px = was
        del detector.detect, plates.detect


@pytest.mark.parametrize("kind", LAST_RESORTS)
def test_lane_threads_run_the_last_resort_one_at_a_time(reader, kind):
    """Behind the plate detector the last resort (the whole-frame text search at 896 px, or
    its own look at 800 px) is the dearest run in memory: lane threads sharing the reader run
    it one at a time, so two lanes' peaks never add up. Two threads read bare walls; the last
    resort is slowed so that they would overlap."""
    import threading
    import time

    wall = np.full((720, 1280, 3), 110, np.uint8)
    inside, most, ran = [0], [0], [0]
    count = threading.Lock()

    def slow(run):
        with count:
            inside[0] += 1
            ran[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            time.sleep(0.3)
            return run()
        finally:
            with count:
                inside[0] -= 1

    with _last_resort_as(reader, kind, slow, wall.shape[:2]):
        lanes = [threading.Thread(target=reader.read, args=(wall,)) for _ in range(2)]
        for t in lanes:
            t.start()
        for t in lanes:
            t.join(120)
    assert (ran[0], most[0]) == (2, 1)


@pytest.mark.parametrize("kind", LAST_RESORTS)
def test_the_last_resort_runs_with_no_other_read_beside_it(reader, kind):
    """The last resort is the dearest run in memory (~43 MB for the text search, ~31 MB for
    the plate detector at 800 px): lane threads sharing the reader run it alone, so its peak never adds to another
    lane's read. Lane a reads a bare wall (its last resort slowed to 0.4 s) while lane b keeps
    reading a plate; then b reads (its plate detector slowed) while a asks for its last
    resort. No run of b's plate detector overlaps a last resort, and both lanes still read
    what they read alone."""
    import threading
    import time

    wall = np.full((720, 1280, 3), 110, np.uint8)
    scene = render_scene("7XYZ123", seed=2)
    runs: list[tuple[str, str, float, float]] = []  # (thread, what, start, end)
    plates = reader.plate_detector
    searching = threading.Event()

    def search(run):
        start = time.monotonic()
        searching.set()
        time.sleep(0.4)
        found = run()
        runs.append((threading.current_thread().name, "search", start, time.monotonic()))
        return found

    def plate_look(image, input_px=None, faint=None):
        start = time.monotonic()
        if threading.current_thread().name == "b":
            time.sleep(0.05)
        found = looked(image, input_px=input_px, faint=faint)
        runs.append((threading.current_thread().name, "plates", start, time.monotonic()))
        return found

    b_reads: list[str | None] = []

    def lane_b():
        assert searching.wait(60)
        for _ in range(4):  # reads asked for while a's last resort runs, and after it
            b_reads.append(reader.read(scene).plate)

    with _last_resort_as(reader, kind, search, wall.shape[:2]):
        looked = plates.detect  # the hook's: the last resort goes through `search`
        plates.detect = plate_look
        lanes = [threading.Thread(target=lambda: reader.read(wall), name="a"),
                 threading.Thread(target=lane_b, name="b")]
        for t in lanes:
            t.start()
        for t in lanes:
            t.join(120)
        # b reads first and a asks for its last resort while b's plate look is under way
        searching.clear()
        lanes = [threading.Thread(target=lambda: b_reads.append(reader.read(scene).plate),
                                  name="b"),
                 threading.Thread(target=lambda: reader.read(wall), name="a")]
        for t in lanes:
            t.start()
            time.sleep(0.02)
        for t in lanes:
            t.join(120)
    searches = [(s, e) for who, what, s, e in runs if what == "search"]
    others = [(s, e) for who, what, s, e in runs if who == "b" and what == "plates"]
    assert len(searches) == 2 and len(others) >= 5
    for s0, e0 in searches:
        for s1, e1 in others:
            assert e1 <= s0 or s1 >= e0, "a plate look ran beside a last resort"
    assert b_reads == ["7XYZ123"] * 5


def _rss_anon_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))


@pytest.mark.parametrize("kind", LAST_RESORTS)
def test_the_last_resort_starts_on_a_trimmed_heap(reader, kind):
    """The last resort is a read's peak in memory. The plate detector's looks and the reads
    of their boxes before it free their buffers into the heap, which keeps them resident
    until a trim: the last resort must not stack its peak on them. At its start a trim finds
    (almost) nothing left to hand back."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    wall = np.full((720, 1280, 3), 110, np.uint8)
    untrimmed_kib: list[int] = []

    def measured(run):
        before = _rss_anon_kib()
        libc.malloc_trim(0)
        untrimmed_kib.append(before - _rss_anon_kib())
        return run()

    scene = render_scene("7XYZ123", seed=2, width_px=1280, height_px=720)
    with _last_resort_as(reader, kind, measured, wall.shape[:2]):
        for _ in range(3):
            assert reader.read(scene).plate == "7XYZ123"  # its buffers freed before the wall
            assert reader.read(wall).plate is None
    assert len(untrimmed_kib) == 3
    assert max(untrimmed_kib) < 1024, f"the last resort started beside {untrimmed_kib} KiB freed"


def _run_with_detect(detector, detect, threads) -> None:
    """Run the lane threads to their end with the text detector's `detect` replaced."""
    detector.detect = detect
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        del detector.detect


def test_sessions_with_more_than_one_thread_do_not_spin_while_they_wait():
    """onnxruntime's pool threads spin between runs by default: beside the other lanes' reads
    they burn the cores they wait on. Every session lotedge opens has spinning off."""
    from lpr.engine import DEFAULT_REC, _session

    options = _session(DEFAULT_REC, 2).get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_a_large_text_search_runs_in_strips_and_finds_the_same_lines():
    """The whole-frame search's memory grows with its input: above `strip_pixels` the text
    detector runs overlapping strips, none larger than that, and joins their maps; a plate
    placed across the cut between the strips is found as in one run."""
    det = TextDetector(threads=1)
    runs: list[tuple[int, int]] = []
    session = det.session

    class Recording:
        def run(self, outputs, feeds):
            runs.append(next(iter(feeds.values())).shape[2:])
            return session.run(outputs, feeds)

    # 1280 x 720 at 896: 896 x 512; two strips of 320 rows, the cut band at rows 192-320
    scene = render_scene("7ABC123", width_px=1280, height_px=720, plate_width_px=150,
                         at=(560, 330))
    det.session = Recording()
    stripped = det.detect(scene, max_side_px=896)
    assert runs == [(320, 896), (320, 896)]
    assert all(h * w <= det.strip_pixels for h, w in runs)
    det.strip_pixels = 0
    whole = det.detect(scene, max_side_px=896)
    assert runs[2:] == [(512, 896)]
    assert whole and len(stripped) == len(whole)
    for a, b in zip(sorted(stripped, key=lambda b: b.bbox), sorted(whole, key=lambda b: b.bbox),
                    strict=True):
        assert np.abs(np.array(a.bbox) - np.array(b.bbox)).max() <= 3


def test_every_strip_of_a_frame_has_one_shape_so_its_memory_is_planned_once():
    """onnxruntime plans a shape's memory on its first run, which peaks higher: the strips of
    any landscape frame at 896 px are all 896 x 320 (the last one ends at the frame's bottom,
    sharing more rows with the one before), so one plan serves every frame."""
    from itertools import pairwise

    det = TextDetector(threads=1)
    for w, h, rows in ((1280, 720, 320), (1024, 640, 320), (1280, 960, 320), (1920, 1080, 320),
                       (800, 600, 352)):  # 800 px wide is not scaled up: its own height
        image = det._prepare(np.zeros((h, w, 3), np.uint8), 896, False)[0]
        strips = det.strips(*image.shape[:2])
        assert {end - start for start, end in strips} == {rows}, (w, h, strips)
        assert strips[0][0] == 0 and strips[-1][1] == image.shape[0]
        assert all(b[0] <= a[1] - det.strip_overlap_px for a, b in pairwise(strips))


def test_planned_memory_leaves_the_text_map_as_it_was():
    """The text detector's session plans its tensors into one block per input shape (faster
    and smaller where they outgrow the mmap threshold); the map it gives is the unplanned one,
    for a frame run in strips (896 px: two strips of 320 rows) and for one run at once."""
    from lpr.engine import DEFAULT_DET, _session

    planned = TextDetector(DEFAULT_DET)
    assert planned.session.get_session_options().enable_mem_pattern
    unplanned = TextDetector(DEFAULT_DET)
    unplanned.session = _session(DEFAULT_DET, 1)
    scene = render_scene("ABC1234", seed=5, width_px=1280, height_px=720)
    for side in (896, 320):
        image = planned._prepare(scene, side, False)[0]
        assert (image.shape[0] * image.shape[1] > planned.strip_pixels) == (side == 896)
        first = planned._probability(image)
        assert first.shape == image.shape[:2]
        np.testing.assert_array_equal(first, unplanned._probability(image))


def test_planned_memory_leaves_the_plate_boxes_as_they_were():
    """The plate detector's session plans its tensors too: the same boxes and scores."""
    from lpr.engine import DEFAULT_PLATE_DET, PlateDetector, _session

    planned = PlateDetector(DEFAULT_PLATE_DET)
    assert planned.session.get_session_options().enable_mem_pattern
    unplanned = PlateDetector(DEFAULT_PLATE_DET)
    unplanned.session = _session(DEFAULT_PLATE_DET, 1)
    scene = render_scene("8D79882", seed=3)  # a rendered plate this detector finds
    for frame, px in ((scene, 416), (cv2.resize(scene, None, fx=2.0, fy=2.0), 640)):
        boxes = planned.detect(frame, input_px=px)
        assert len(boxes) == 1
        assert boxes == unplanned.detect(frame, input_px=px)


def test_a_text_detector_input_is_made_in_one_array():
    """A 896 x 320 strip's network input is 3.4 MB. Made as an expression, step by step, it
    held a temporary of that size as well, which the heap kept resident under the
    network's run. Made in place, it takes no more than itself, with the same values."""
    import tracemalloc

    rows = np.random.default_rng(7).integers(0, 256, (320, 896, 3), dtype=np.uint8)
    tracemalloc.start()
    try:
        blob = TextDetector._blob(rows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert blob.shape == (1, 3, 320, 896) and blob.dtype == np.float32
    assert blob.flags.c_contiguous
    assert peak < blob.nbytes * 1.1, f"{peak} bytes at the peak for a {blob.nbytes}-byte input"
    # the BGR channels first, each value v as v / 127.5 - 1
    expected = rows.transpose(2, 0, 1).astype(np.float64) / 127.5 - 1.0
    assert np.abs(blob[0] - expected).max() < 1e-6
