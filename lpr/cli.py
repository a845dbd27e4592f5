"""`lotedge lpr read` and `lotedge lpr bench`: the plate reader from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from appliance.errors import InputError

lpr_app = typer.Typer(help="Licence plate recognition tools", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c",
                                                help="lot TOML whose \\[lpr] section to use")]


RegionOpt = Annotated[list[str] | None, typer.Option(
    "--region", "-r", help="plate formats by country code (us, br, uk, de, fr, ..., or eu for "
    "every European one); repeatable; replaces the config's \\[lpr] regions")]


def _reader(config: Path | None, regions: list[str] | None = None):
    import dataclasses

    from appliance.config import LprSection, load_config
    from lpr.reader import PlateReader
    from lpr.regions import resolve_regions

    section = load_config(config).lpr if config else LprSection()
    if regions:
        try:
            section = dataclasses.replace(section, regions=resolve_regions(regions))
        except ValueError as err:
            raise InputError(f"--region: {err}") from err
    return PlateReader.from_config(section)


@lpr_app.command("read")
def read(
    images: Annotated[list[Path], typer.Argument(help="image files")],
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    config: ConfigOpt = None,
    region: RegionOpt = None,
) -> None:
    """Read the plate in each image."""
    import cv2

    reader = _reader(config, region)
    for path in images:
        image = cv2.imread(str(path)) if path.is_file() else None
        if image is None:
            raise InputError(f"cannot read image {path}")
        res = reader.read(image)
        row = {"image": str(path), "plate": res.plate, "confidence": round(res.confidence, 4),
               "bbox": list(res.bbox) if res.bbox and res.plate else None, "ms": round(res.ms, 1)}
        if json_out:
            print(json.dumps(row))
        else:
            print(f"{path}: {res.plate or 'no read'} (confidence {row['confidence']:.2f}, "
                  f"{row['ms']:.0f} ms)")


@lpr_app.command("bench")
def bench(
    folder: Annotated[Path, typer.Argument(help="labelled folder (<stem>.txt next to images)")],
    config: ConfigOpt = None,
    misses: Annotated[bool, typer.Option(help="list the images read wrongly")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    region: RegionOpt = None,
    part: Annotated[str, typer.Option(
        help="all, or one fixed half (sorted by name): dev (even) or held-out (odd)")] = "all",
) -> None:
    """Exact-plate accuracy, character accuracy and median/p95 latency on a labelled folder."""
    from lpr.bench import load_labels, run_bench, split_items

    items = split_items(load_labels(folder), part)
    result = run_bench(_reader(config, region), items)
    if json_out:
        print(json.dumps({"images": result.images, "exact": result.exact,
                          "exact_accuracy": round(result.exact_accuracy, 4),
                          "char_accuracy": round(result.char_accuracy, 4),
                          "median_ms": round(result.median_ms, 1),
                          "p95_ms": round(result.p95_ms, 1)}))
    else:
        print(f"images: {result.images}")
        print(f"exact-plate accuracy: {result.exact_accuracy:.1%} ({result.exact}/{result.images})")
        print(f"character accuracy: {result.char_accuracy:.1%}")
        print(f"latency: median {result.median_ms:.0f} ms, p95 {result.p95_ms:.0f} ms")
    if misses:
        for name, truth, got in result.misses:
            print(f"miss {name}: truth {truth} read {got}")
