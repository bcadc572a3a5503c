"""Checks of the options every framework adapter takes: they fail at construction,
with ``ConfigurationError``, never at the first request."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote

from .errors import ConfigurationError


def check_realm(realm: object) -> str:
    """``realm``, if it can stand in a quoted ``WWW-Authenticate`` parameter."""
    if not isinstance(realm, str) or not re.fullmatch(r"[ !#-\[\]-~]+", realm):
        raise ConfigurationError(
            "realm must be a non-empty string of printable ASCII without '\"' or '\\'"
        )
    return realm


def check_callable(name: str, value: object) -> None:
    """Raise ``ConfigurationError`` unless ``value`` is callable or ``None``."""
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name} must be callable, not {type(value).__name__}")


def check_max_body_size(value: object) -> int:
    """``value``, if it is a positive number of bytes."""
    if type(value) is not int or value < 1:
        raise ConfigurationError("max_body_size must be a positive integer (bytes)")
    return value


def refuse_unknown(user: str, unknown: Mapping[str, object], known: Sequence[str]) -> None:
    """Python would raise ``TypeError``; this also says which option was meant."""
    if unknown:
        name = next(iter(unknown))
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the options are {', '.join(known)}"
        raise ConfigurationError(f"{user}() got an unknown option {name!r}: {hint}")


class Paths:
    """``exact`` and ``prefix*`` path patterns, matched against the raw request path.

    The raw (still percent-encoded) path is what a client sent, so a pattern only
    matches the requests it spells out; an encoded variant (``/a%2Fb`` for
    ``/a/*``), which the router may resolve differently, is *not* matched and so
    stays protected.
    """

    def __init__(self, option: str, patterns: object) -> None:
        """Check and compile ``patterns``.

        Args:
            option: The option's name, for the error message.
            patterns: Exact paths (``"/health"``) and prefixes ending in ``*``
                (``"/public/*"``).

        Raises:
            ConfigurationError: For anything else.
        """
        if isinstance(patterns, str | bytes) or not isinstance(patterns, Iterable):
            raise ConfigurationError(
                f"{option} must be a list of paths such as ['/health', '/public/*'], "
                f"not {type(patterns).__name__}"
            )
        exact: set[str] = set()
        prefixes: list[str] = []
        for pattern in patterns:
            if (
                not isinstance(pattern, str)
                or not pattern.startswith("/")
                or "*" in pattern[:-1]
                or "?" in pattern
            ):
                raise ConfigurationError(
                    f"{option}: {pattern!r} is not a path pattern: use an exact path "
                    "('/health') or a prefix ending in '*' ('/public/*'), without a query"
                )
            if pattern.endswith("*"):
                prefixes.append(_quote_path(pattern[:-1]))
            else:
                exact.add(_quote_path(pattern))
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)

    def __call__(self, raw_path: str) -> bool:
        """Whether ``raw_path`` (percent-encoded, no query) matches a pattern."""
        return raw_path in self._exact or raw_path.startswith(self._prefixes)


def _quote_path(path: str) -> str:
    # As a client encodes it: RFC 3986 pchar and '/' stay, the rest is %-encoded.
    return quote(path, safe="/:@!$&'()*+,;=-._~")
