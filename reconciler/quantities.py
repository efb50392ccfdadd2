"""Kubernetes resource quantities, parsed to integers (pure)."""

from __future__ import annotations

import re
from decimal import Decimal

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
            "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)}
_QUANTITY = re.compile(r"^([+]?[0-9]+(?:\.[0-9]*)?|[+]?\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")


def parse(quantity: str | int | float) -> Decimal:
    """A quantity as an exact decimal number of base units; ValueError when malformed."""
    text = str(quantity).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {quantity!r}")
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    return number * _DECIMAL[suffix]


def cpu_millis(quantity: str | int | float) -> int:
    """CPU quantity in millicores, rounded up ("500m" -> 500, "2" -> 2000)."""
    value = parse(quantity) * 1000
    return int(value.to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(quantity: str | int | float) -> int:
    """Memory quantity in bytes, rounded up ("512Mi" -> 536870912)."""
    return int(parse(quantity).to_integral_value(rounding="ROUND_CEILING"))


def format_cpu(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_memory(size: int) -> str:
    for suffix, factor in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size % factor == 0 and size >= factor:
            return f"{size // factor}{suffix}"
    return str(size)
