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


# -- built-in regions by country code ------------------------------------------------------------

from lpr.regions import BR, BUILTIN_REGIONS, REGION_GROUPS, region_by_code  # noqa: E402


@pytest.mark.parametrize(("raw", "expected"), [
    ("ABC-1234", "ABC1234"),     # the grey plates LLL-DDDD
    ("ABC1D23", "ABC1D23"),      # Mercosur LLLDLDD
    ("AB01234", "ABO1234"),      # 0 in a letter position is an O
    ("0KL1235", "OKL1235"),
    ("PJB24I4", "PJB2414"),      # I in a digit position is a 1
    ("ABC12345", None),          # too long for either format
    ("ABC123", None),
])
def test_brazil_old_and_mercosur_formats(raw, expected):
    assert normalize(raw, region_by_code("br")) == expected


def test_the_us_rule_is_the_us_regions_not_everyones():
    # the US writes one glyph for O and 0; a Brazilian O stays an O
    assert normalize("OKL1235", region_by_code("us")) == "0KL1235"
    assert normalize("OKL1235", region_by_code("br")) == "OKL1235"


def test_eu_is_every_european_format_with_its_source():
    eu = region_by_code("eu")
    names = {r.name for r in eu}
    assert {"de", "fr", "it", "es", "nl", "pl", "sk", "cz", "se", "no", "uk"} <= names
    assert len(names) >= 25
    for region in (*eu, BR, BUILTIN_REGIONS["us"]):
        assert region.source.startswith("https://"), region.name
        assert region.masks or region.pattern


@pytest.mark.parametrize(("raw", "code", "expected"), [
    ("RK340A0", "eu", "RK340AO"),   # Slovak LLDDDLL: a 0 in a letter position is an O
    ("BB135B0", "sk", "BB135BO"),
    ("FAB123CD", "fr", "AB123CD"),  # the band's F read as part of the plate
    ("SKBA268IM", "eu", "BA268IM"),  # ... or the band's SK
    ("AB123CO", "it", "AB123CD"),   # Italy never prints O: the look-alike letter
    ("1BO0338", "cz", "1B00338"),   # Czech third place: never an O, so a 0
    ("5678BCD", "es", "5678BCD"),
    ("5678ACD", "es", None),        # Spain prints no vowels
    ("FL12345", "li", "FL12345"),
    ("AB12345", "li", None),        # Liechtenstein plates start with FL
    ("M5XSX", "eu", None),          # a show plate fits no European format
])
def test_european_formats_by_country(raw, code, expected):
    assert normalize(raw, region_by_code(code)) == expected


def test_the_recogniser_s_doubt_decides_between_equal_fits():
    regions = region_by_code("be") + region_by_code("cz")
    # 1-BOO-338 (Belgian) or 1BO 0338 (Czech): change the character the recogniser doubted
    unsure_third = (0.99, 0.99, 0.3, 0.99, 0.99, 0.99, 0.99)
    unsure_fourth = (0.99, 0.99, 0.99, 0.3, 0.99, 0.99, 0.99)
    assert normalize("1BO0338", regions, unsure_third) == "1B00338"
    assert normalize("1BO0338", regions, unsure_fourth) == "1BOO338"


def test_unknown_region_code_is_refused():
    with pytest.raises(ValueError, match="unknown region code 'xx'"):
        region_by_code("xx")
    assert region_by_code("GB") == REGION_GROUPS["gb"]


def test_config_selects_built_in_regions_by_code():
    cfg = parse_config(LOT + '[lpr]\nregions = ["br"]\n')
    assert cfg.lpr.regions == (BR,)
    cfg = parse_config(LOT + '[lpr]\nregions = ["de", "fr", "eu"]\n')
    names = [r.name for r in cfg.lpr.regions]
    assert names[:2] == ["de", "fr"] and len(names) == len(set(names)) and "sk" in names
    assert normalize("RK340A0", cfg.lpr.regions) == "RK340AO"
    # codes and custom formats together (TOML arrays may mix strings and tables)
    cfg = parse_config(LOT + '[lpr]\nregions = ["br", { name = "x", pattern = "X[0-9]{3}" }]\n')
    assert [r.name for r in cfg.lpr.regions] == ["br", "x"]
    assert normalize("X123", cfg.lpr.regions) == "X123"


def test_config_unknown_region_code_names_the_key_and_line():
    with pytest.raises(ConfigError, match=r"lpr\.regions: unknown region code 'zz'") as info:
        parse_config(LOT + '[lpr]\nregions = ["br", "zz"]\n', path="lot.toml")
    assert info.value.line == 8


def test_a_bare_pattern_after_formats_is_a_fallback():
    eu_or_any = region_by_code("eu") + region_by_code("generic")
    assert normalize("M5XSX", eu_or_any) == "M5XSX"       # a show plate: no format, fallback
    assert normalize("RK340A0", eu_or_any) == "RK340AO"   # a format fits: it decides
    assert normalize("KM5SFGH", (UK, US)) == "KM55FGH"    # the UK listed first decides
    assert normalize("KM5SFGH", (US, UK)) == "KM5SFGH"    # the US listed first takes it as is
