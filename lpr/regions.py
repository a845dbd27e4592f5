"""Plate formats per region and read normalisation: separators, case, confusable characters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A mask position says which characters a region prints there: L letter, D digit, A either.
_TO_DIGIT = {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "G": "6",
             "B": "8", "T": "7"}
_TO_LETTER = {"0": "O", "1": "I", "2": "Z", "5": "S", "6": "G", "8": "B", "4": "A", "7": "T"}
_SEPARATORS = re.compile(r"[^A-Z0-9]")


@dataclass(frozen=True, kw_only=True)
class RegionFormat:
    """How one region's plates look.

    Args:
        name: short region name (`us`, `uk`, ...).
        pattern: full-match regex a normalised plate must satisfy (after `replace`).
        masks: position masks (`L` letter, `D` digit, `A` either), tried before the regex; a
            read of the same length is mapped to fit (O->0 in a digit position, 0->O in a
            letter position, likewise I/1, B/8, S/5, Z/2, G/6).
        replace: characters always replaced in this region (e.g. US plates print one glyph
            for O and 0, written 0).
    """

    __pydantic_config__ = {"extra": "forbid"}

    name: str
    pattern: str = r"[A-Z0-9]{2,10}"
    masks: tuple[str, ...] = ()
    replace: dict[str, str] = field(default_factory=dict)

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


US = RegionFormat(name="us", pattern=r"[A-Z0-9]{2,8}", replace={"O": "0"})
UK = RegionFormat(name="uk", pattern=r"[A-Z]{2}[0-9]{2}[A-Z]{3}", masks=("LLDDLLL",))
GENERIC = RegionFormat(name="generic", pattern=r"[A-Z0-9]{2,10}")
BUILTIN_REGIONS = {r.name: r for r in (US, UK, GENERIC)}


def clean(raw: str) -> str:
    """Uppercase and strip everything that is not A-Z or 0-9 (spaces, dashes, dots)."""
    return _SEPARATORS.sub("", raw.upper())


def fit_mask(text: str, mask: str) -> str | None:
    """Map confusable characters so `text` fits `mask`; None if it cannot."""
    if len(text) != len(mask):
        return None
    out = []
    for ch, kind in zip(text, mask, strict=True):
        if kind == "D" and not ch.isdigit():
            ch = _TO_DIGIT.get(ch, ch)
            if not ch.isdigit():
                return None
        elif kind == "L" and not ch.isalpha():
            ch = _TO_LETTER.get(ch, ch)
            if not ch.isalpha():
                return None
        out.append(ch)
    return "".join(out)


def normalize(raw: str | None, regions: tuple[RegionFormat, ...] = (US,)) -> str | None:
    """The plate as the first matching region formats it, or None if no region accepts it."""
    if not raw:
        return None
    text = clean(raw)
    for region in regions:
        candidate = "".join(region.replace.get(c, c) for c in text)
        for mask in region.masks:
            fitted = fit_mask(candidate, mask)
            if fitted is not None and re.fullmatch(region.pattern, fitted):
                return fitted
        if re.fullmatch(region.pattern, candidate):
            return candidate
    return None
