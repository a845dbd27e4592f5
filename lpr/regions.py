"""Plate formats per region and read normalisation: separators, case, confusable characters.

Built-in regions are chosen by country code (`[lpr] regions = ["br"]`, `["de", "fr"]`, `["eu"]`);
each states the positional masks of the plates that country issues now (and older ones still on
the road), the characters it never prints, and where that comes from.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

# A mask position says which characters a region prints there: L letter, D digit, A either.
_TO_DIGIT = {"O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "J": "1", "Z": "2",
             "S": "5", "G": "6", "B": "8", "T": "7"}
_TO_LETTER = {"0": "O", "1": "I", "2": "Z", "5": "S", "6": "G", "8": "B", "4": "A", "7": "T"}
# Where a region never prints a letter, the glyph is most likely one of these instead.
_LETTER_TWIN = {"O": "D0Q", "Q": "O0", "D": "O0", "I": "1JL", "U": "V0", "0": "OD"}
_SEPARATORS = re.compile(r"[^A-Z0-9]")
_WIKI = "https://en.wikipedia.org/wiki/Vehicle_registration_plates_of_"


@dataclass(frozen=True, kw_only=True)
class RegionFormat:
    """How one region's plates look.

    Args:
        name: short region name (`us`, `uk`, `de`, ...).
        pattern: full-match regex a normalised plate must satisfy (after `replace`); "" = only
            what a mask accepts.
        masks: position masks (`L` letter, `D` digit, `A` either), tried before the regex; a
            read of the same length is mapped to fit (O->0 in a digit position, 0->O in a
            letter position, likewise I/1, B/8, S/5, Z/2, G/6).
        replace: characters always replaced in this region (e.g. US plates print one glyph
            for O and 0, written 0).
        never: letters this region never prints in a masked plate; a read that needs one is
            mapped to its look-alike (O->0 where a digit may stand) or refused.
        prefix: the plate starts with this text (e.g. `FL` in Liechtenstein).
        band: the country letters on the plate's blue band (`D`, `SK`); a read that starts
            with them and is otherwise one of the masks is taken without them.
        source: where the format comes from.
    """

    __pydantic_config__ = {"extra": "forbid"}

    name: str
    pattern: str = r"[A-Z0-9]{2,10}"
    masks: tuple[str, ...] = ()
    replace: dict[str, str] = field(default_factory=dict)
    never: str = ""
    prefix: str = ""
    band: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as err:
            raise ValueError(f"pattern: not a valid regular expression: {err}") from err
        for mask in self.masks:
            if not mask or set(mask) - set("LDA"):
                raise ValueError(f"masks: {mask!r} may only use L (letter), D (digit), A (any)")
        for src, dst in self.replace.items():
            if len(src) != 1 or len(dst) != 1:
                raise ValueError("replace: keys and values must be single characters")
        if set(self.never) - set("ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
            raise ValueError("never: may only list uppercase letters A-Z")
        if self.prefix and not re.fullmatch(r"[A-Z0-9]+", self.prefix):
            raise ValueError("prefix: may only use A-Z and 0-9")
        if self.band and not re.fullmatch(r"[A-Z]{1,3}", self.band):
            raise ValueError("band: 1-3 letters A-Z")


def _masks(*groups: str) -> tuple[str, ...]:
    """Masks from groups written like `L1-3 L1-2 D1-4 /8` (letters 1-3, ..., at most 8 long)."""
    out: list[str] = []
    for spec in groups:
        parts, limit = spec.split("/") if "/" in spec else (spec, "99")
        choices = []
        for part in parts.split():
            kind, counts = part[0], part[1:]
            lo, hi = (int(x) for x in counts.split("-")) if "-" in counts else (int(counts),) * 2
            choices.append([kind * n for n in range(lo, hi + 1)])
        for combo in itertools.product(*choices):
            mask = "".join(combo)
            if len(mask) <= int(limit) and mask not in out:
                out.append(mask)
    return tuple(out)


def _country(code: str, band: str, masks: tuple[str, ...], *, never: str = "",
             prefix: str = "", article: str = "") -> RegionFormat:
    return RegionFormat(name=code, pattern="", masks=masks, never=never, prefix=prefix,
                        band=band, source=_WIKI + article)


US = RegionFormat(name="us", pattern=r"[A-Z0-9]{2,8}", replace={"O": "0"},
                  source=_WIKI + "the_United_States (each state its own serial; the benchmark "
                  "and many states write one glyph for O and 0)")
# The UK: the current format (since 2001); older cherished series are not fixed-format.
UK = RegionFormat(name="uk", pattern=r"[A-Z]{2}[0-9]{2}[A-Z]{3}", masks=("LLDDLLL",),
                  never="IQ", band="UK", source=_WIKI + "the_United_Kingdom")
GENERIC = RegionFormat(name="generic", pattern=r"[A-Z0-9]{2,10}",
                       source="any 2-10 letters and digits")
# Brazil: the grey plates LLL-DDDD and the Mercosur plates LLLDLDD (since 2018).
BR = _country("br", "", ("LLLDDDD", "LLLDLDD"), article="Brazil")

# EU and EEA countries with fixed formats (current series and the older ones still common).
EUROPE = (
    _country("be", "B", ("DLLLDDD", "LLLDDD"), article="Belgium"),
    _country("bg", "BG", ("LDDDDLL", "LLDDDDLL"), article="Bulgaria"),
    _country("cy", "CY", ("LLLDDD",), article="Cyprus"),
    # D L A DDDD: district digit, region letter, a letter or digit, four digits
    _country("cz", "CZ", ("DLADDDD",), never="GOQW", article="the_Czech_Republic"),
    # district (1-3 letters), 1-2 letters, 1-4 digits, at most 8 characters
    _country("de", "D", _masks("L1-3 L1-2 D1-4 /8"), article="Germany"),
    _country("dk", "DK", ("LLDDDDD",), article="Denmark"),
    _country("ee", "EST", ("DDDLLL",), article="Estonia"),
    _country("es", "E", ("DDDDLLL",), never="AEIOQU", article="Spain"),
    _country("fi", "FIN", _masks("L2-3 D1-3"), article="Finland"),
    _country("fr", "F", ("LLDDDLL",), never="IOU", article="France"),
    # Greek plates use only the letters shared by the Greek and Latin alphabets
    _country("gr", "GR", ("LLLDDDD",), never="CDFGJLQRSUVW", article="Greece"),
    _country("hr", "HR", _masks("L2 D3-4 L1-2"), article="Croatia"),
    _country("hu", "H", ("LLLDDD", "LLLLDDD"), article="Hungary"),
    # year (2-3 digits), county (1-2 letters), serial (1-6 digits)
    _country("ie", "IRL", _masks("D2-3 L1-2 D1-6 /10"), article="Ireland"),
    _country("it", "I", ("LLDDDLL",), never="IOQU", article="Italy"),
    _country("lt", "LT", ("LLLDDD",), article="Lithuania"),
    _country("lu", "L", ("LLDDDD",), article="Luxembourg"),
    _country("lv", "LV", ("LLDDDD",), article="Latvia"),
    _country("mt", "M", ("LLLDDD",), article="Malta"),
    # sidecodes 1-14 (XX-99-99 ... 999-XX-9); C and Q are never used
    _country("nl", "NL", ("LLDDDD", "DDDDLL", "DDLLDD", "LLDDLL", "LLLLDD", "DDLLLL", "DDLLLD",
                    "DLLLDD", "LLDDDL", "LDDDLL", "LLLDDL", "LDDLLL", "DLLDDD", "DDDLLD"),
             never="CQ", article="the_Netherlands"),
    # 2-letter district + 5 (12345, 1234A, 123AB, 1A234, 1AB23); 3-letter district + 4 or 5
    _country("pl", "PL", ("LLDDDDD", "LLDDDDL", "LLDDDLL", "LLDLDDD", "LLDLLDD",
                    "LLLLDDD", "LLLDDLL", "LLLDLDD", "LLLDDLD", "LLLDLLD", "LLLLLDD",
                    "LLLDDDDD", "LLLDDDDL", "LLLDDDLL"), article="Poland"),
    _country("pt", "P", ("LLDDLL", "DDDDLL", "DDLLDD", "LLDDDD"), article="Portugal"),
    _country("ro", "RO", ("LLDDLLL", "LDDLLL", "LDDDLLL"), article="Romania"),
    _country("se", "S", ("LLLDDD", "LLLDDL"), never="IQV", article="Sweden"),
    _country("sk", "SK", ("LLDDDLL",), article="Slovakia"),
    # EEA members outside the EU
    _country("is", "IS", ("LLDDD", "LLLDD"), article="Iceland"),
    _country("li", "FL", _masks("L2 D1-5"), prefix="FL", article="Liechtenstein"),
    _country("no", "N", ("LLDDDDD",), article="Norway"),
)

BUILTIN_REGIONS = {r.name: r for r in (US, UK, GENERIC, BR, *EUROPE)}
# Codes that stand for several formats: `eu` = the EU/EEA countries above and the UK.
REGION_GROUPS: dict[str, tuple[RegionFormat, ...]] = {
    "eu": (*EUROPE, UK),
    "gb": (UK,),
}


def region_by_code(code: str) -> tuple[RegionFormat, ...]:
    """The built-in formats a country code (or `eu`, all European ones) stands for."""
    key = code.strip().lower()
    if key in REGION_GROUPS:
        return REGION_GROUPS[key]
    if key in BUILTIN_REGIONS:
        return (BUILTIN_REGIONS[key],)
    known = ", ".join(sorted({*BUILTIN_REGIONS, *REGION_GROUPS}))
    raise ValueError(f"unknown region code {code!r} (built-in: {known})")


def resolve_regions(items) -> tuple[RegionFormat, ...]:
    """Region codes and formats in config order, codes expanded, duplicates dropped."""
    out: list[RegionFormat] = []
    for item in items:
        for region in (region_by_code(item) if isinstance(item, str) else (item,)):
            if region not in out:
                out.append(region)
    return tuple(out)


def clean(raw: str) -> str:
    """Uppercase and strip everything that is not A-Z or 0-9 (spaces, dashes, dots)."""
    return _SEPARATORS.sub("", raw.upper())


def fit_mask(text: str, mask: str, never: str = "") -> str | None:
    """Map confusable characters so `text` fits `mask`; None if it cannot."""
    fitted = _fit(text, mask, never)
    return fitted[0] if fitted else None


# O/0 and I/1 are drawn almost alike on most plates; other look-alikes are rarer mistakes.
_NEAR_TWINS = {frozenset("O0"), frozenset("I1")}


def _cost(read: str, plate: str) -> float:
    return 0.5 if frozenset((read, plate)) in _NEAR_TWINS else 1.0


def _fit(text: str, mask: str, never: str,
         sure: tuple[float, ...] | None = None) -> tuple[str, float] | None:
    """`text` mapped to fit `mask` and what the mapping cost.

    Each changed character costs by how alike the two glyphs are, times how sure the
    recogniser was of what it read there (`sure`, one value per character; 1 when unknown).
    """
    if len(text) != len(mask):
        return None
    out, cost = [], 0.0
    for i, (read, kind) in enumerate(zip(text, mask, strict=True)):
        ch = read
        if kind == "D" and not ch.isdigit():
            ch = _TO_DIGIT.get(ch, ch)
            if not ch.isdigit():
                return None
        elif kind == "L" and not ch.isalpha():
            ch = _TO_LETTER.get(ch, ch)
            if not ch.isalpha():
                return None
        if ch in never:
            # where a digit may stand, the digit look-alike first (O->0); else a letter (O->D)
            twins = sorted(_LETTER_TWIN.get(ch, ""), key=lambda t: not t.isdigit())
            twin = next((t for t in twins if t not in never and (kind == "A" or t.isalpha())),
                        None)
            if twin is None:
                return None
            ch = twin
            cost += 0.25  # a letter the region never prints: a guess more than a fix
        if ch != read:
            cost += _cost(read, ch) * (sure[i] if sure else 1.0)
        out.append(ch)
    return "".join(out), cost


def _candidates(text: str, region: RegionFormat, sure: tuple[float, ...] | None):
    """(plate, cost) for each way `text` fits one of the region's masks."""
    bodies = [(text, sure, 0.0)]
    if region.band and text.startswith(region.band) and len(text) > len(region.band):
        # the country letters of the plate's band read as part of the plate
        cut = len(region.band)
        bodies.append((text[cut:], sure[cut:] if sure else None, 0.5))
    for mask in region.masks:
        for body, body_sure, extra in bodies:
            fitted = _fit(body, mask, region.never, body_sure)
            if fitted is None:
                continue
            plate, cost = fitted
            if region.prefix and not plate.startswith(region.prefix):
                continue
            if region.pattern and not re.fullmatch(region.pattern, plate):
                continue
            yield plate, cost + extra


def normalize(raw: str | None, regions: tuple[RegionFormat, ...] = (US,),
              char_conf: tuple[float, ...] | None = None) -> str | None:
    """The plate as the best-fitting region formats it, or None if no region accepts it.

    A read that fits a region's mask as it is wins over one that needs characters mapped
    (O->0, 8->B ...), a cheap mapping (O->0, or a character the recogniser was unsure of) over
    a dear one; among equal fits the region listed first wins. A region without masks (a bare
    pattern such as `us` or `generic`) is a fallback: it takes the read only when no region
    listed before it does. `char_conf`: the recogniser's confidence in each character of `raw`.
    """
    if not raw:
        return None
    text = clean(raw)
    sure = tuple(char_conf) if char_conf is not None and len(char_conf) == len(raw) == len(
        text) else None
    best: tuple[float, str] | None = None
    for region in regions:
        if not region.masks and best is not None:
            break
        candidate = "".join(region.replace.get(c, c) for c in text)
        options = list(_candidates(candidate, region, sure))
        if region.pattern and re.fullmatch(region.pattern, candidate) and (
                not region.prefix or candidate.startswith(region.prefix)):
            options.append((candidate, 0.0 if not region.masks else 1.0))
        for plate, cost in options:
            if best is None or cost < best[0]:
                best = (cost, plate)
        if best is not None and best[0] == 0:
            break
    return best[1] if best else None
