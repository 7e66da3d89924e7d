"""Which route a request takes: the normalised path, APIRule v2 path patterns, first match (pure).

The path a rule sees is the path the workload will act on, so that `/admin/../public`,
`/%61dmin`, `//admin` and `/admin/./x` cannot slip past a rule written for `/admin/{**}`:
- percent-escapes of unreserved characters (RFC 3986 2.3: ALPHA DIGIT - . _ ~) are
  decoded, other escapes are kept with upper-case hex; `%2F` stays `%2F` (decoding it
  would turn one segment into two, which the workload may not do);
- `.` and `..` segments are resolved (RFC 3986 5.2.4), `//` runs become one `/`;
- the query is not part of the path; a target that is not a path (no leading `/`) or
  holds a control character, a bad escape or an escaped NUL is refused (400), and so is
  one with a dot segment a workload may see but the rules would not (`..;`, `..%2F`).

Patterns are Kyma APIRule v2's (and Istio's path templates): an exact path, `{*}` for one
whole segment, `{**}` for any number of segments as the last one (`/admin/{**}` also
covers `/admin` itself, so a rule for a subtree never leaves its root open). `/*` is read
as `/{**}`, as Kyma documents.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from mtlskit.errors import ConfigError

__all__ = ["PathPattern", "RouteMatch", "RouteTable", "normalise_path"]

_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_SEGMENT: Final = "[^/]+"
_TOKEN: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 method token


def _decode_unreserved(path: str) -> str | None:
    out: list[str] = []
    i = 0
    while i < len(path):
        c = path[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        m = _ESCAPE.match(path, i)
        if m is None:
            return None  # a lone or malformed '%'
        char = chr(int(m.group(1), 16))
        if char == "\0":
            return None
        out.append(char if char in _UNRESERVED else "%" + m.group(1).upper())
        i += 3
    return "".join(out)


def _hidden_dot_segment(path: str) -> bool:
    """A `..` or `.` that a workload could see and the rules would not: refused (400).

    `/public/..;/admin` is `/admin` to servlet containers (`;` starts path parameters);
    `/public/..%2Fadmin` and `..%5C` are `/admin` to servers that decode slashes before
    resolving dots. Envoy and nginx offer to reject such paths; here they always are.
    """
    for segment in path.split("/"):
        if segment.split(";", 1)[0] in (".", "..") and ";" in segment:
            return True
    upper = path.upper()
    if "%2F" in upper or "%5C" in upper or "\\" in path:
        unescaped = upper.replace("%2F", "/").replace("%5C", "/").replace("\\", "/")
        return any(part.split(";", 1)[0] in (".", "..") for part in unescaped.split("/"))
    return False


def normalise_path(target: str) -> str | None:
    """The path of a request target as rules see it, or None when it is not a valid path.

    Args:
        target: the request target (origin form `/path?query`), as received.

    Returns:
        The normalised path without the query (always starting with `/`), or None for a
        target to refuse with 400.
    """
    path = target.partition("?")[0].partition("#")[0]
    if not path.startswith("/") or any(ord(c) < 0x21 or ord(c) == 0x7F for c in path):
        return None
    decoded = _decode_unreserved(path)
    if decoded is None or _hidden_dot_segment(decoded):
        return None
    segments: list[str] = []
    parts = decoded.split("/")[1:]
    for i, segment in enumerate(parts):
        last = i == len(parts) - 1
        if segment == "..":
            if segments:
                segments.pop()
            if last:
                segments.append("")  # "/a/.." -> "/": a directory
        elif segment == ".":
            if last:
                segments.append("")
        elif segment or last:
            segments.append(segment)  # empty segments ('//') vanish, but a trailing '/' stays
    return "/" + "/".join(segments)


@dataclass(frozen=True, slots=True)
class PathPattern:
    """One APIRule v2 path pattern, compiled.

    Attributes:
        text: the pattern as written (`/orders/{*}`, `/admin/{**}`, `/health`).

    Raises:
        ConfigError: a pattern not starting with `/`, `{**}` not last, a wildcard that is
            not a whole segment, or a pattern that would not survive normalisation.
    """

    text: str
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = "/{**}" if self.text == "/*" else self.text
        if not text.startswith("/") or any(c in "?#%" or ord(c) < 0x21 for c in text):
            raise _bad(self.text, "a pattern starts with '/' and holds no space, '?', '#' or '%'")
        segments = text.split("/")[1:]
        regex: list[str] = []
        for i, segment in enumerate(segments):
            if segment == "{**}":
                if i != len(segments) - 1:
                    raise _bad(self.text, "'{**}' must be the last segment")
                regex.append(f"(?:/{_SEGMENT})*/?")
            elif segment == "{*}":
                regex.append(f"/{_SEGMENT}")
            elif "{" in segment or "}" in segment or "*" in segment:
                raise _bad(self.text, f"segment {segment!r}: wildcards are whole segments")
            elif segment in (".", ".."):
                raise _bad(self.text, "'.' and '..' segments never reach a rule")
            else:
                regex.append("/" + re.escape(segment))
        object.__setattr__(self, "_regex", re.compile("".join(regex) or "/"))

    def matches(self, path: str) -> bool:
        """Whether a normalised path (normalise_path's output) matches."""
        return self._regex.fullmatch(path) is not None


def _bad(pattern: str, why: str) -> ConfigError:
    return ConfigError(
        f"route path {pattern!r}: {why}",
        "write an exact path, '{*}' for one segment or '{**}' at the end, e.g. /orders/{*}",
    )


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """Where a request goes.

    Attributes:
        index: the route's position in the table (file order), -1 when none matched.
        status: 0 when a route takes it, 404 when no route's path matches, 405 when one
            does but not for this method, 400 when the target is not a valid path.
        path: the normalised path ("" for 400).
        allow: for 405, the methods the matching routes take (the Allow header).
    """

    index: int
    status: int
    path: str
    allow: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Entry:
    patterns: tuple[PathPattern, ...]
    methods: frozenset[str]  # empty: every method


class RouteTable:
    """Routes in file order: the first whose path and method match takes the request.

    Args:
        routes: for each route, its path patterns and its methods (empty: any method).

    Raises:
        ConfigError: a bad pattern or method name.
    """

    def __init__(self, routes: Sequence[tuple[Sequence[str], Sequence[str]]]) -> None:
        entries = []
        for paths, methods in routes:
            for method in methods:
                if not _TOKEN.match(method):
                    raise ConfigError(
                        f"route method {method!r} is not an HTTP method",
                        "list methods such as GET, POST, PUT, DELETE",
                    )
            entries.append(
                _Entry(tuple(PathPattern(p) for p in paths), frozenset(m.upper() for m in methods))
            )
        self._entries = tuple(entries)

    def match(self, method: str, target: str) -> RouteMatch:
        """The route for a request (method as sent, target as received)."""
        path = normalise_path(target)
        if path is None:
            return RouteMatch(-1, 400, "")
        allow: list[str] = []
        for index, entry in enumerate(self._entries):
            if not any(p.matches(path) for p in entry.patterns):
                continue
            # Methods are case-sensitive (RFC 9110 9.1): "get" is not GET, and is refused.
            if not entry.methods or method in entry.methods:
                return RouteMatch(index, 0, path)
            allow.extend(m for m in sorted(entry.methods) if m not in allow)
        if allow:
            return RouteMatch(-1, 405, path, tuple(allow))
        return RouteMatch(-1, 404, path)
