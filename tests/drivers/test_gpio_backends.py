"""GPIO backends of a Pi: lgpio for a Pi 5 packaged as the `pi` extra that deploy/install.sh
installs; `pin_factory = "auto"` picks what the board has, and says in one line what is missing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from appliance.errors import DeviceError
from drivers.gpio import auto_backend, board_model, make_pin_factory

REPO = Path(__file__).resolve().parents[2]


def model_file(tmp_path: Path, text: str) -> tuple[str, ...]:
    path = tmp_path / "model"
    path.write_bytes(text.encode() + b"\0")
    return (str(path),)


def test_auto_on_a_machine_that_is_not_a_pi_names_what_is_missing(tmp_path: Path):
    with pytest.raises(DeviceError) as err:
        make_pin_factory("auto", model_files=(str(tmp_path / "none"),))
    text = str(err.value)
    assert err.value.code == "gpio_backend" and "\n" not in text
    assert "not a Raspberry Pi" in text and "--simulate" in text


def test_auto_on_a_pi_5_needs_lgpio(tmp_path: Path):
    files = model_file(tmp_path, "Raspberry Pi 5 Model B Rev 1.0")
    assert board_model(files) == "Raspberry Pi 5 Model B Rev 1.0"
    assert auto_backend(board_model(files), have_lgpio=True) == "lgpio"
    with pytest.raises(DeviceError) as err:
        auto_backend(board_model(files), have_lgpio=False)
    assert "lgpio" in str(err.value) and "lotedge[pi]" in str(err.value)


def test_auto_on_an_older_pi_falls_back_to_gpiozeros_native(tmp_path: Path):
    files = model_file(tmp_path, "Raspberry Pi 4 Model B Rev 1.4")
    assert auto_backend(board_model(files), have_lgpio=False) == "native"
    assert auto_backend(board_model(files), have_lgpio=True) == "lgpio"


def test_a_missing_backend_library_is_one_line_naming_the_extra():
    try:
        import lgpio  # noqa: F401
    except ImportError:
        with pytest.raises(DeviceError) as err:
            make_pin_factory("lgpio")
        assert "not installed" in str(err.value) and "lotedge[pi]" in str(err.value)
    else:  # on a Pi the library is there; the chip decides
        pass


def test_the_pi_extra_pins_lgpio_and_the_installer_installs_it():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (req,) = project["optional-dependencies"]["pi"]
    assert req.startswith("lgpio==") and "platform_machine == 'aarch64'" in req
    assert 'src[pi]"' in (REPO / "deploy" / "install.sh").read_text()
