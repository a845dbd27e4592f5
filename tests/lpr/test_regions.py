"""Normalisation, confusable characters and region formats."""

from __future__ import annotations

import pytest

from appliance.config import parse_config
from appliance.errors import ConfigError
from lpr.regions import GENERIC, UK, US, RegionFormat, clean, fit_mask, normalize


@pytest.mark.parametrize(("raw", "expected"), [
    ("abc-123", "ABC123"),
    (" 7 xyz 123 ", "7XYZ123"),
    ("KM55.FGH", "KM55FGH"),
    ("", ""),
])
def test_clean_uppercases_and_strips_separators(raw, expected):
    assert clean(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("0SG719", "0SG719"),
    ("OSG719", "0SG719"),        # US plates print one glyph for O and 0: written 0
    ("hk0-e7c", "HK0E7C"),
    ("A", None),                 # too short for a US plate
    ("ABCDEFGHJ", None),         # too long
    (None, None),
    ("--", None),
])
def test_us_normalisation(raw, expected):
    assert normalize(raw, (US,)) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("KM55FGH", "KM55FGH"),
    ("KM5SFGH", "KM55FGH"),      # S in a digit position is a 5
    ("KMSSF6H", "KM55FGH"),      # ...and 6 in a letter position is a G
    ("0B12CDE", "OB12CDE"),      # 0 in a letter position is an O
    ("K855FGH", "KB55FGH"),      # 8 in a letter position is a B
    ("KM55FG", None),            # wrong length
    ("KM55FXH9", None),          # too long
])
def test_uk_mask_maps_confusables_by_position(raw, expected):
    assert normalize(raw, (UK,)) == expected


def test_fit_mask_refuses_what_cannot_be_mapped():
    assert fit_mask("ABC", "DDD") is None
    assert fit_mask("IO8", "DDD") == "108"
    assert fit_mask("108", "LLL") == "IOB"
    assert fit_mask("A1", "AA") == "A1"


def test_first_accepting_region_wins():
    assert normalize("KM55FGH", (UK, US)) == "KM55FGH"
    assert normalize("ABC12", (UK, US)) == "ABC12"
    assert normalize("ABC12", (UK,)) is None
    assert normalize("ABCDE12345", (GENERIC,)) == "ABCDE12345"


def test_region_format_rejects_bad_masks_and_patterns():
    with pytest.raises(ValueError, match="masks"):
        RegionFormat(name="x", masks=("LLX",))
    with pytest.raises(ValueError, match="pattern"):
        RegionFormat(name="x", pattern="[A-")


LOT = """
[lot]
id = "l"
[[levels]]
id = "L1"
capacity = { REGULAR = 5 }
"""


def test_lpr_config_section_defaults_and_custom_regions():
    cfg = parse_config(LOT)
    assert cfg.lpr.regions == (US,)
    assert cfg.lpr.burst_frames == 5
    assert cfg.lpr.detector == "yolo" and cfg.lpr.plate_det_px == 416
    cfg = parse_config(LOT + """
[lpr]
burst_frames = 3
min_confidence = 0.7
[[lpr.regions]]
name = "uk"
pattern = "[A-Z]{2}[0-9]{2}[A-Z]{3}"
masks = ["LLDDLLL"]
""")
    assert cfg.lpr.burst_frames == 3
    assert cfg.lpr.regions[0].masks == ("LLDDLLL",)
    assert normalize("KM5SFGH", cfg.lpr.regions) == "KM55FGH"


@pytest.mark.parametrize(("snippet", "message"), [
    ("[lpr]\nmin_confidence = 1.5", "lpr.min_confidence"),
    ("[lpr]\nburst_frames = 0", "lpr.burst_frames"),
    ("[lpr]\nthreads = 0", "lpr.threads"),
    ("[lpr]\ndetector = \"plates\"", "lpr.detector"),
    ("[lpr]\nplate_det_px = 400", "lpr.plate_det_px"),
    ("[lpr]\nburst_frame = 3", "lpr.burst_frame: unknown key"),
    ("[[lpr.regions]]\nname = \"x\"\nmasks = [\"LQ\"]", r"lpr\.regions\[0\]\.masks"),
])
def test_lpr_config_errors_name_the_key_and_line(snippet, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(LOT + snippet, path="lot.toml")
    assert info.value.line is not None and info.value.line > 7
