"""Who may pass: AccessPolicy (allow rules as data) -> evaluate(identity) -> Decision.

AccessPolicy is also the gateway's `[policy]` table: each rule's field carries its config
key metadata (flag, help, docs), so a rule is described once, here, next to its matching.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from mtlskit._config_keys import config_key
from mtlskit._config_kinds import BOOL, STRS
from mtlskit.errors import ConfigError
from mtlskit.identity import PeerIdentity

__all__ = ["AccessPolicy", "Decision", "evaluate"]

DENY_REASON: Final = "no allow rule matched the client certificate"
EMPTY_REASON: Final = "the access policy allows no client"
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_SEGMENT: Final = "[^/?#]+"  # one non-empty path segment: never '/', never into query/fragment
_WILDCARDS: Final = {"*": f"/{_SEGMENT}", "**": f"(?:/{_SEGMENT})*"}  # as whole path segments


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one client.

    Attributes:
        allowed: whether the client may pass.
        rule: the rule that allowed it, as configured (`cn=alice`, `uri=spiffe://td/ns/*/sa/*`,
            `allow_all`), or "" for a denial.
        reason: for a denial, a short sentence safe to send to the client (it names no other
            identity and no rule); "" when allowed.
    """

    allowed: bool
    rule: str
    reason: str = ""


def _bad_pattern(pattern: str, why: str) -> ConfigError:
    return ConfigError(
        f"policy.allow_uri pattern {pattern!r} (--allow-uri): {why}",
        "write scheme://authority/path where '*' is one whole path segment and '**' any "
        "number of segments, e.g. spiffe://example.org/ns/*/sa/*",
    )


def _compile_uri(pattern: str) -> re.Pattern[str]:
    """Check an allow_uri pattern and compile it to a regex for `fullmatch`.

    `*` is exactly one non-empty path segment (no `/`, `?` or `#`), `**` zero or more
    segments; both only as whole segments of the path, never in the scheme or authority
    (so a pattern can never widen to another SPIFFE trust domain).

    Raises:
        ConfigError: the pattern is empty, has no scheme, or misuses `*`.
    """
    if not pattern or pattern != pattern.strip() or any(c.isspace() for c in pattern):
        raise _bad_pattern(pattern, "it is empty or contains whitespace")
    scheme = _SCHEME.match(pattern)
    if scheme is None:
        raise _bad_pattern(pattern, "it has no scheme (spiffe:, https:, ...)")
    if "*" not in pattern:  # a literal: exact, but scheme and authority case-insensitive
        head, sep, rest = pattern.partition("://")
        if not sep:
            return re.compile(re.escape(pattern))
        authority, slash, path = rest.partition("/")
        return re.compile(f"(?i:{re.escape(head + sep + authority)}){re.escape(slash + path)}")
    if not pattern[scheme.end() :].startswith("//"):
        raise _bad_pattern(pattern, "wildcards need an authority: scheme://authority/path")
    prefix_end = pattern.find("/", scheme.end() + 2)
    prefix = pattern if prefix_end < 0 else pattern[:prefix_end]
    if "*" in prefix:
        raise _bad_pattern(pattern, "'*' cannot match the scheme or the authority/trust domain")
    rest = pattern[prefix_end:]
    path, query = re.match(r"([^?#]*)(.*)", rest).groups()  # type: ignore[union-attr]
    if "*" in query:
        raise _bad_pattern(pattern, "'*' can only stand for path segments, not a query")
    regex = [f"(?i:{re.escape(prefix)})"]
    previous = ""
    for segment in path[1:].split("/"):
        if "*" in segment and segment not in ("*", "**"):
            raise _bad_pattern(pattern, f"segment {segment!r}: '*' must be a whole segment")
        if segment == "**" == previous:
            raise _bad_pattern(pattern, "'**/**' is redundant")
        regex.append(_WILDCARDS.get(segment) or "/" + re.escape(segment))
        previous = segment
    regex.append(re.escape(query))
    return re.compile("".join(regex))


def _check_names(key: str, values: tuple[str, ...]) -> None:
    for value in values:
        if not isinstance(value, str) or not value or not value.isprintable():
            raise ConfigError(
                f"policy.{key} has an empty or unprintable entry {value!r}",
                f"--{key.replace('_', '-')} takes a non-empty name",
            )
        if key == "allow_dns" and "*" in value:
            raise ConfigError(
                f"policy.allow_dns {value!r}: DNS names match exactly, '*' is not a wildcard",
                "list each DNS name, or match SPIFFE IDs with --allow-uri patterns",
            )


@dataclass(frozen=True, slots=True)
class _Compiled:
    """An AccessPolicy ready to evaluate: sets, a dict and compiled regexes (built once)."""

    allow_all: bool
    empty: bool
    cn: frozenset[str]
    ou: frozenset[str]
    dns: dict[str, str]  # lowercase name -> the rule as configured
    uri: tuple[tuple[re.Pattern[str], str], ...]


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Who may connect: rules OR'd together; a policy with no rule denies everyone.

    Attributes:
        allow_all: any client with a certificate the trust store verified.
        allow_cn: subject common names, exact and case-sensitive.
        allow_ou: organizational units; any OU of the client may match.
        allow_dns: DNS SANs, exact and case-insensitive.
        allow_uri: URI SAN patterns: `*` is one whole path segment, `**` any number of
            them, never in the scheme or authority (so never another trust domain).

    Raises:
        ConfigError: an empty name, a `*` in allow_dns, or a bad URI pattern.
    """

    allow_all: bool = config_key(
        False,
        kind=BOOL,
        help="admit any client whose certificate verifies (no identity rule)",
        doc="admit any client whose certificate verifies",
    )
    allow_cn: tuple[str, ...] = config_key(
        (), kind=STRS, help="admit this subject CN (repeatable)", doc="admit these subject CNs"
    )
    allow_ou: tuple[str, ...] = config_key(
        (), kind=STRS, help="admit this subject OU (repeatable)", doc="admit these subject OUs"
    )
    allow_dns: tuple[str, ...] = config_key(
        (),
        kind=STRS,
        help="admit this DNS SAN (repeatable)",
        doc="admit these DNS SANs (exact, case-insensitive)",
    )
    allow_uri: tuple[str, ...] = config_key(
        (),
        kind=STRS,
        help="admit this URI SAN; * is one path segment, ** any (repeatable)",
        doc="admit these URI SANs; `*` is one path segment, `**` any number",
    )
    _compiled: _Compiled = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("allow_cn", "allow_ou", "allow_dns", "allow_uri"):
            values = tuple(getattr(self, name))
            object.__setattr__(self, name, values)
            _check_names(name, values)
        compiled = _Compiled(
            allow_all=self.allow_all,
            empty=self.is_empty,
            cn=frozenset(self.allow_cn),
            ou=frozenset(self.allow_ou),
            dns={name.lower(): name for name in reversed(self.allow_dns)},
            uri=tuple((_compile_uri(p), p) for p in self.allow_uri),
        )
        object.__setattr__(self, "_compiled", compiled)

    @property
    def is_empty(self) -> bool:
        """True when no rule allows anyone (such a policy denies every client)."""
        return not (
            self.allow_all or self.allow_cn or self.allow_ou or self.allow_dns or self.allow_uri
        )


def evaluate(policy: AccessPolicy, identity: PeerIdentity) -> Decision:
    """Decide whether this client may pass; the first matching rule is named.

    Rules are checked as allow_all, cn, ou, dns, uri. Patterns were compiled when the
    policy was built, so this is a few set lookups and regex matches.
    """
    rules = policy._compiled
    if rules.allow_all:
        return Decision(True, "allow_all")
    cn = identity.common_name
    if cn is not None and cn in rules.cn:
        return Decision(True, f"cn={cn}")
    for ou in identity.organizational_units:
        if ou in rules.ou:
            return Decision(True, f"ou={ou}")
    for dns in identity.dns_sans:
        rule = rules.dns.get(dns.lower())
        if rule is not None:
            return Decision(True, f"dns={rule}")
    for regex, pattern in rules.uri:
        for uri in identity.uri_sans:
            if regex.fullmatch(uri):
                return Decision(True, f"uri={pattern}")
    return Decision(False, "", EMPTY_REASON if rules.empty else DENY_REASON)
