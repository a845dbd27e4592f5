"""Modbus RTU register maps of spot sensors: where a sensor keeps its distance and how to read it.

A map names the function (03 read holding registers, 04 read input registers), the register
(protocol address, 0-based, as it goes on the wire), one or two registers with their word order,
the scale and unit of one count, and the raw values that mean "no target" (no echo, out of
range). `decode` turns the registers a sensor answered into centimetres, or None for no target.
Presets are real products whose register maps are published; the source is named in each.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

_CM_PER = {"mm": Decimal("0.1"), "cm": Decimal(1), "in": Decimal("2.54")}


@dataclass(frozen=True, kw_only=True)
class RegisterMap:
    """Where one sensor model keeps its distance (a `[[sensor_models]]` entry or a preset).

    Args:
        id: the model's name in config (`sensor_model = "..."`).
        function: 3 (read holding registers) or 4 (read input registers).
        register: protocol address of the first register (0-based, as sent on the wire).
        count: 1 (16-bit value) or 2 (32-bit value over two registers).
        word_order: for count 2: "big" (high word first, the Modbus custom) or "little".
        signed: the value is two's complement.
        scale: one count is `scale` units (e.g. 0.1 for a register in tenths of a millimetre).
        unit: "mm", "cm" or "in".
        no_target: raw values meaning "no target" (no echo, out of range, not measured yet).
        min_cm, max_cm: the sensor's range; a reading outside it is "out of range" (no target,
            counted), never a distance.
        source: where the map is published.
    """

    __pydantic_config__ = {"extra": "forbid"}

    id: str
    function: Literal[3, 4] = 3
    register: int
    count: Literal[1, 2] = 1
    word_order: Literal["big", "little"] = "big"
    signed: bool = False
    scale: Decimal = Decimal(1)
    unit: Literal["mm", "cm", "in"] = "cm"
    no_target: tuple[int, ...] = ()
    min_cm: int = 0
    max_cm: int = 1000
    source: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.register <= 0xFFFF - (self.count - 1):
            raise ValueError("register: must be a protocol address 0-65535 (0-based)")
        if self.scale <= 0:
            raise ValueError("scale: must be positive")
        if not 0 <= self.min_cm < self.max_cm:
            raise ValueError("min_cm: must be at least 0 and below max_cm")
        top = 1 << (16 * self.count)
        for raw in self.no_target:
            if not 0 <= raw < top:
                raise ValueError(f"no_target: {raw} does not fit in {self.count} register(s)")

    def raw(self, registers: list[int]) -> int:
        """The raw count the registers hold (words put together, sign applied)."""
        if len(registers) != self.count:
            raise ValueError(f"{self.id}: expected {self.count} registers, got {len(registers)}")
        words = registers if self.word_order == "big" else registers[::-1]
        value = 0
        for word in words:
            value = (value << 16) | (word & 0xFFFF)
        return value

    def decode(self, registers: list[int]) -> tuple[int | None, str]:
        """(distance_cm, "ok") or (None, "no_target" | "out_of_range") for what a sensor sent."""
        value = self.raw(registers)
        if value in self.no_target:
            return None, "no_target"
        if self.signed and value >= 1 << (16 * self.count - 1):
            value -= 1 << (16 * self.count)
        cm = Decimal(value) * self.scale * _CM_PER[self.unit]
        if not self.min_cm <= cm <= self.max_cm:
            return None, "out_of_range"
        return int(cm.to_integral_value()), "ok"

    def encode(self, distance_cm: int | None) -> list[int]:
        """The registers a sensor of this model shows for `distance_cm` (None: no target)."""
        if distance_cm is None:
            value = self.no_target[0] if self.no_target else (1 << (16 * self.count)) - 1
        else:
            value = int((Decimal(distance_cm) / _CM_PER[self.unit] / self.scale)
                        .to_integral_value())
        words = [(value >> (16 * i)) & 0xFFFF for i in reversed(range(self.count))]
        return words if self.word_order == "big" else words[::-1]


PRESETS: dict[str, RegisterMap] = {m.id: m for m in (
    # DFRobot URM14 RS485 ultrasonic sensor (SEN0358), wiki.dfrobot.com/sen0358 "Communication
    # Protocol Description": distance register 0x05 read with 03, one count = 0.1 mm, register
    # default 0xFFFF (no measurement); default address 0x0C, 19200 baud 8N1. The limits here are
    # what the register can hold (0xFFFE = 655.3 cm); narrow them to the data sheet's range in a
    # [[sensor_models]] copy if the site needs to.
    RegisterMap(id="dfrobot-urm14", function=3, register=0x05, scale=Decimal("0.1"), unit="mm",
                no_target=(0xFFFF,), min_cm=1, max_cm=655,
                source="wiki.dfrobot.com/sen0358 (URM14 RS485, SEN0358)"),
    # DFRobot SEN0492 RS485 laser ranging sensor: distance register 0x34 read with 03, in mm;
    # default address 0x50, 115200 baud 8N1; published example: request 50 03 00 34 00 01 C8 45,
    # answer 50 03 02 07 0B 06 7F = 1803 mm (wiki.dfrobot.com/sen0492).
    RegisterMap(id="dfrobot-sen0492", function=3, register=0x34, unit="mm", min_cm=4,
                max_cm=400, source="wiki.dfrobot.com/sen0492 (SEN0492 laser ranging, RS485)"),
    # APG MNU Modbus ultrasonic sensor: input register 30300 (function 04), raw distance in mm,
    # 9600 baud 8N1, at least 300 ms between transactions (APG MNU Modbus user manual, rev. B1,
    # "Sensor Communications"). 30300 in the manual's 3xxxx numbering = protocol address 299.
    RegisterMap(id="apg-mnu", function=4, register=299, unit="mm", min_cm=0, max_cm=1036,
                source="APG MNU Modbus sensor user manual rev. B1, p. 10 (input register 30300)"),
)}
