"""Access policy: rules OR'd, empty denies, URI wildcards stay inside the path."""

from __future__ import annotations

from dataclasses import replace

import pytest

import mtlskit.policy
from mtlskit.errors import ConfigError
from mtlskit.identity import PeerIdentity
from mtlskit.pki import CertificateAuthority
from mtlskit.policy import AccessPolicy, Decision, evaluate

SPIFFE = "spiffe://example.org/ns/shop/sa/alice"


@pytest.fixture
def alice(ca: CertificateAuthority) -> PeerIdentity:
    issued = ca.issue_client(
        "alice", [SPIFFE, "Alice.Example.org"], organization="Acme", unit="payments"
    )
    return PeerIdentity.from_certificate(issued.certificate, issued.intermediates)


def test_empty_policy_denies(alice: PeerIdentity) -> None:
    policy = AccessPolicy()
    assert policy.is_empty
    decision = evaluate(policy, alice)
    assert decision == Decision(False, "", "the access policy allows no client")


def test_allow_all(alice: PeerIdentity) -> None:
    assert evaluate(AccessPolicy(allow_all=True), alice) == Decision(True, "allow_all")
    assert not AccessPolicy(allow_all=True).is_empty


@pytest.mark.parametrize(
    ("policy", "rule"),
    [
        (AccessPolicy(allow_cn=("bob", "alice")), "cn=alice"),
        (AccessPolicy(allow_ou=("payments",)), "ou=payments"),
        (AccessPolicy(allow_dns=("ALICE.example.ORG",)), "dns=ALICE.example.ORG"),
        (AccessPolicy(allow_uri=(SPIFFE,)), f"uri={SPIFFE}"),
        *(
            (AccessPolicy(allow_uri=(pattern,)), f"uri={pattern}")
            for pattern in (
                "SPIFFE://Example.ORG/ns/shop/sa/alice",  # scheme and authority ignore case
                "spiffe://example.org/ns/*/sa/*",
                "spiffe://example.org/**",
                "spiffe://example.org/ns/**/alice",
            )
        ),
    ],
)
def test_each_rule_kind_allows_and_names_itself(
    alice: PeerIdentity, policy: AccessPolicy, rule: str
) -> None:
    assert evaluate(policy, alice) == Decision(True, rule)


@pytest.mark.parametrize(
    "policy",
    [
        AccessPolicy(allow_cn=("Alice",)),  # CN is case-sensitive
        AccessPolicy(allow_cn=("alic",)),
        AccessPolicy(allow_ou=("Acme",)),  # that is the O, not an OU
        AccessPolicy(allow_dns=("example.org",)),
        AccessPolicy(allow_uri=("spiffe://example.org/ns/shop/sa/ALICE",)),  # path is exact
        AccessPolicy(allow_uri=("spiffe://example.org/ns/*",)),  # '*' is one segment
        AccessPolicy(allow_uri=("spiffe://example.org/*/sa/alice",)),
        AccessPolicy(allow_uri=("spiffe://other.org/**",)),
        AccessPolicy(allow_uri=("spiffe://example.org/ns/shop/sa/alice/**/x",)),
    ],
)
def test_non_matching_rules_deny_with_a_safe_reason(
    alice: PeerIdentity, policy: AccessPolicy
) -> None:
    decision = evaluate(policy, alice)
    assert decision == Decision(False, "", "no allow rule matched the client certificate")
    assert not policy.is_empty


def test_rule_order_is_documented(alice: PeerIdentity) -> None:
    policy = AccessPolicy(allow_uri=("spiffe://example.org/**",), allow_cn=("alice",))
    assert evaluate(policy, alice).rule == "cn=alice"


def test_patterns_are_compiled_once_with_the_policy(
    alice: PeerIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = AccessPolicy(allow_uri=("spiffe://example.org/ns/*/sa/*",))

    def compile_again(pattern: str) -> None:
        raise AssertionError(f"{pattern} compiled per evaluation")

    monkeypatch.setattr(mtlskit.policy, "_compile_uri", compile_again)
    assert evaluate(policy, alice) == Decision(True, "uri=spiffe://example.org/ns/*/sa/*")


def test_policy_is_hashable_and_takes_lists() -> None:
    policy = AccessPolicy(allow_cn=["a", "b"])  # type: ignore[arg-type]
    assert policy.allow_cn == ("a", "b")
    assert policy == AccessPolicy(allow_cn=("a", "b"))
    assert hash(policy) == hash(AccessPolicy(allow_cn=("a", "b")))


@pytest.mark.parametrize(
    ("uri", "matches"),
    [
        ("spiffe://td/ns/a/sa/b", True),
        ("spiffe://TD/ns/a/sa/b", True),  # authority is case-insensitive (RFC 3986 6.2.2.1)
        ("spiffe://td/ns/a/b/sa/c", False),  # '*' never crosses '/'
        ("spiffe://td/ns//sa/b", False),  # '*' is one non-empty segment
        ("spiffe://td/ns/a/sa/b/c", False),
        ("spiffe://td/ns/a?x=/sa/b", False),  # nor runs into a query
        ("spiffe://td.evil/ns/a/sa/b", False),
        ("spiffe://td/ns/a/sa/b#frag", False),
    ],
)
def test_single_star(alice: PeerIdentity, uri: str, matches: bool) -> None:
    policy = AccessPolicy(allow_uri=("spiffe://td/ns/*/sa/*",))
    assert evaluate(policy, _with_uri(alice, uri)).allowed is matches


@pytest.mark.parametrize(
    ("uri", "matches"),
    [
        ("spiffe://td/ns", True),  # zero segments
        ("spiffe://td/ns/a", True),
        ("spiffe://td/ns/a/b/c", True),
        ("spiffe://td/nsx/a", False),
        ("spiffe://td/ns/a?q", False),
    ],
)
def test_double_star(alice: PeerIdentity, uri: str, matches: bool) -> None:
    policy = AccessPolicy(allow_uri=("spiffe://td/ns/**",))
    assert evaluate(policy, _with_uri(alice, uri)).allowed is matches


def _with_uri(identity: PeerIdentity, uri: str) -> PeerIdentity:
    # only the URI SAN matters here; CN/OU/DNS are cleared so no other rule can match
    return replace(identity, uri_sans=(uri,), common_name=None, dns_sans=())


@pytest.mark.parametrize(
    ("pattern", "needle"),
    [
        ("", "empty"),
        (" spiffe://td/x", "whitespace"),
        ("td/ns/*", "scheme"),
        ("spiffe://*/ns/x", "authority"),
        ("spiffe://td*/ns/x", "authority"),
        ("*://td/ns/x", "scheme"),
        ("spiffe://td/ns/***", "whole segment"),
        ("spiffe://td/ns/web-*", "whole segment"),
        ("spiffe://td/**/**/x", "redundant"),
        ("https://h/p?x=*", "query"),
        ("urn:example:*", "authority"),
    ],
)
def test_bad_uri_patterns(pattern: str, needle: str) -> None:
    # Patterns are checked where the config builds the policy ([policy], --allow-uri); the
    # error names both (an empty entry, refused before it is a pattern, has the flag in its hint).
    with pytest.raises(ConfigError, match=needle) as info:
        AccessPolicy(allow_uri=(pattern,))
    assert "policy.allow_uri" in info.value.message
    assert "--allow-uri" in f"{info.value.message}\n{info.value.hint}"


@pytest.mark.parametrize(
    "kwargs",
    [{"allow_cn": ("",)}, {"allow_ou": ("a\nb",)}, {"allow_dns": ("*.example.org",)}],
)
def test_bad_names_are_config_errors(kwargs: dict[str, tuple[str, ...]]) -> None:
    with pytest.raises(ConfigError):
        AccessPolicy(**kwargs)  # type: ignore[arg-type]


def test_literal_uri_without_authority(alice: PeerIdentity) -> None:
    policy = AccessPolicy(allow_uri=("urn:example:alice",))  # accepted: no ConfigError
    assert evaluate(policy, _with_uri(alice, "urn:example:alice")).allowed
    assert not evaluate(policy, _with_uri(alice, "urn:example:alicex")).allowed
