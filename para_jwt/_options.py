"""Checks for numeric and callable settings, shared so every class words them alike.

``bool`` is an ``int`` in Python, so ``timeout=True`` would pass an ``isinstance``
check; it is refused everywhere. A wrong value is shown only when it is a number:
anything else by its type, in case it is a key passed to the wrong parameter.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Collection, Iterable

from .errors import ConfigurationError

__all__ = ["check_callable", "check_int", "check_options", "check_seconds"]


def _shown(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return type(value).__name__


def check_seconds(
    name: str, value: object, *, allow_zero: bool, maximum: float | None = None
) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
        or (maximum is not None and value > maximum)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        if maximum is not None:
            bound += f" and <= {maximum:g}"
        raise ConfigurationError(
            f"{name} must be a finite number of seconds {bound}, got {_shown(value)}"
        )
    return float(value)


def check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {_shown(value)}")
    return value


def check_callable(name: str, value: object, what: str) -> Callable[..., object]:
    if not callable(value):
        raise ConfigurationError(f"{name} must be a callable {what}, not {_shown(value)}")
    return value


def check_options(owner: str, given: Iterable[str], accepted: Collection[str]) -> None:
    """Refuse keyword arguments ``owner`` does not take, suggesting the nearest name.

    Args:
        owner: The class the user called, as named in the error.
        given: The keyword arguments' names.
        accepted: Every name ``owner`` takes.

    Raises:
        ConfigurationError: A name is not in ``accepted``.
    """
    for name in sorted(given):
        if name in accepted:
            continue
        nearest = difflib.get_close_matches(name, accepted, n=1)
        hint = (
            f"did you mean {nearest[0]}=?"
            if nearest
            else f"it takes {', '.join(sorted(accepted))}"
        )
        raise ConfigurationError(f"{owner} has no option {name}=: {hint}")
