"""Checks for numeric and callable settings, shared so every class words them alike.

``bool`` is an ``int`` in Python, so ``timeout=True`` would pass an ``isinstance``
check; it is refused everywhere. A wrong value is shown only when it is a number:
anything else by its type, in case it is a key passed to the wrong parameter.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Collection, Iterable
from typing import TypeVar

from .errors import ConfigurationError

__all__ = ["check_callable", "check_int", "check_options", "check_seconds", "configured_by"]

T = TypeVar("T")


def configured_by(owner: str, configure: Callable[[], T]) -> T:
    """Run ``configure``; a ``ConfigurationError`` it raises names ``owner``.

    The checks below word their messages without a class name, since several
    classes share them; this puts the name of the class the user called in front
    (``"ParaAPI: timeout must be ..."``).

    Args:
        owner: The public class the user called.
        configure: Checks the settings and returns what they configure.

    Returns:
        What ``configure`` returned.

    Raises:
        ConfigurationError: ``configure`` refused a setting. Raised outside the
            ``except`` block, so nothing is chained to it.
    """
    problem: str
    try:
        return configure()
    except ConfigurationError as exc:
        problem = str(exc)
    raise ConfigurationError(f"{owner}: {problem}")


def _shown(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return type(value).__name__


def check_seconds(
    name: str, value: object, *, allow_zero: bool, maximum: float | None = None
) -> float:
    """``value`` as a float, if it is a finite number of seconds in range.

    Raises:
        ConfigurationError: It is not; the message names ``name``.
    """
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
    """``value``, if it is an integer (not a bool) of at least ``minimum``.

    Raises:
        ConfigurationError: It is not; the message names ``name``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {_shown(value)}")
    return value


def check_callable(name: str, value: object, what: str) -> Callable[..., object]:
    """``value``, if it is callable (``what`` says what it should return).

    Raises:
        ConfigurationError: It is not; the message names ``name``.
    """
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
