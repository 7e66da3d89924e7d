"""Property tests: identity headers round-trip for any subject; policies only ever widen."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtlskit.identity import (
    PeerIdentity,
    from_headers,
    parse_xfcc,
    render_header_template,
    rfc9440_headers,
    xfcc_value,
)
from mtlskit.pki import CertificateAuthority
from mtlskit.policy import AccessPolicy, evaluate

# Subjects that stress quoting: XFCC and RFC 4514 separators, escapes, Unicode, controls.
tricky = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(",;=\"\\+<>#% \t'")),
        st.characters(codec="utf-8", exclude_categories=["Cs"]),
    ),
    min_size=1,
    max_size=30,
).filter(lambda s: bool(s.strip()) and len(s.encode()) <= 64)  # cryptography counts bytes
segment = st.text(alphabet="abcxyz0-_.", min_size=1, max_size=6)
examples = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def shared_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertificateAuthority]:
    """One CA for the whole module: hypothesis runs many examples per test."""
    directory: Path = tmp_path_factory.mktemp("prop") / "ca"
    authority = CertificateAuthority.create(directory, name="Property Root CA")
    yield authority
    authority.close()


def _issue(ca: CertificateAuthority, cn: str, ou: str | None, o: str | None) -> PeerIdentity:
    issued = ca.issue_client(cn, ["spiffe://example.org/ns/p/sa/q"], organization=o, unit=ou)
    return PeerIdentity.from_certificate(issued.certificate, issued.intermediates)


@examples
@given(cn=tricky, ou=st.none() | tricky, o=st.none() | tricky, by=st.none() | tricky)
def test_xfcc_round_trips_any_subject(
    shared_ca: CertificateAuthority,
    base_identity: PeerIdentity,
    cn: str,
    ou: str | None,
    o: str | None,
    by: str | None,
) -> None:
    identity = _issue(shared_ca, cn, ou, o)
    assert identity.common_name == cn
    header = xfcc_value(identity, by=by)
    assert from_headers({"x-forwarded-client-cert": header}) == identity
    pairs = parse_xfcc(header)[-1]
    subject = render_header_template("%DOWNSTREAM_PEER_SUBJECT%", identity)
    assert ("Subject", subject) in pairs
    assert subject.isascii() and subject.isprintable()
    if by:
        assert pairs[0] == ("By", by)
    # an element a mesh proxy appends behind the edge (Kyma's sidecar) changes nothing
    sidecar = f'By=spiffe://cluster.local/ns/app/sa/default;Hash={"ab" * 32};Subject="";URI='
    assert from_headers([("x-forwarded-client-cert", f"{header},{sidecar}")]) == identity
    # behind an edge that appends client-sent values (APPEND_FORWARD), element="last"
    forged = xfcc_value(base_identity, by=by)
    header = f"{forged},{header}"
    assert from_headers([("x-forwarded-client-cert", header)], element="last") == identity


@examples
@given(cn=tricky, ou=st.none() | tricky)
def test_rfc9440_round_trips(shared_ca: CertificateAuthority, cn: str, ou: str | None) -> None:
    identity = _issue(shared_ca, cn, ou, None)
    headers = rfc9440_headers(identity)
    assert from_headers(headers) == identity
    assert from_headers([(n.upper().encode(), v.encode()) for n, v in headers]) == identity


names = st.lists(st.sampled_from(["alice", "bob", "eng", "ops", "a.example", "B.example"]))
uri_patterns = st.lists(
    st.sampled_from(
        [
            "spiffe://td/ns/*/sa/*",
            "spiffe://td/**",
            "spiffe://td/ns/a/**",
            "spiffe://other/**",
            "spiffe://td/ns/a/sa/b",
        ]
    ),
    max_size=3,
)
policies = st.builds(
    AccessPolicy,
    allow_all=st.booleans(),
    allow_cn=names.map(tuple),
    allow_ou=names.map(tuple),
    allow_dns=names.map(tuple),
    allow_uri=uri_patterns.map(tuple),
)
uris = st.lists(segment, max_size=5).map(lambda segs: "spiffe://td/" + "/".join(segs))


@pytest.fixture(scope="module")
def base_identity(shared_ca: CertificateAuthority) -> PeerIdentity:
    return _issue(shared_ca, "base", None, None)


extra_rules = st.sampled_from(
    [
        ("allow_all", True),
        ("allow_cn", "alice"),
        ("allow_ou", "eng"),
        ("allow_dns", "B.example"),
        ("allow_uri", "spiffe://td/ns/*/sa/*"),
        ("allow_uri", "spiffe://td/**"),
    ]
)


@examples
@given(
    policy=policies,
    extra=extra_rules,
    cn=st.none() | st.sampled_from(["alice", "bob", "carol"]),
    ous=st.lists(st.sampled_from(["eng", "ops", "hr"]), max_size=2),
    dns=st.lists(st.sampled_from(["a.example", "b.example", "c.example"]), max_size=2),
    uri_list=st.lists(uris, max_size=2),
)
def test_adding_an_allow_rule_never_denies_more(
    base_identity: PeerIdentity,
    policy: AccessPolicy,
    extra: tuple[str, object],
    cn: str | None,
    ous: list[str],
    dns: list[str],
    uri_list: list[str],
) -> None:
    identity = replace(
        base_identity,
        common_name=cn,
        organizational_units=tuple(ous),
        dns_sans=tuple(dns),
        uri_sans=tuple(uri_list),
    )
    key, value = extra
    new = value if key == "allow_all" else (*getattr(policy, key), value)
    wider = replace(policy, **{key: new})  # type: ignore[arg-type]
    before, after = evaluate(policy, identity), evaluate(wider, identity)
    assert not before.allowed or after.allowed
    if policy.is_empty:
        assert not before.allowed  # fail closed


@examples
@given(prefix=st.lists(segment, max_size=3), a=segment, b=segment)
def test_single_star_never_crosses_a_slash(
    base_identity: PeerIdentity, prefix: list[str], a: str, b: str
) -> None:
    head = "/".join(["spiffe://td", *prefix])
    policy = AccessPolicy(allow_uri=(f"{head}/*",))
    one = replace(base_identity, common_name=None, dns_sans=(), uri_sans=(f"{head}/{a}",))
    two = replace(one, uri_sans=(f"{head}/{a}/{b}",))
    elsewhere = replace(one, uri_sans=(f"spiffe://{a}x/{'/'.join(prefix)}/{b}",))
    assert evaluate(policy, one).allowed
    assert not evaluate(policy, two).allowed
    assert not evaluate(AccessPolicy(allow_uri=("spiffe://td/**",)), elsewhere).allowed
