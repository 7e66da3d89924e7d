"""Route matching on the normalised path: APIRule v2 patterns and the path tricks (pure)."""

from __future__ import annotations

import pytest

from mtlskit.errors import ConfigError
from mtlskit.routes import PathPattern, RouteTable, normalise_path


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/", "/"),
        ("/orders/42?x=1", "/orders/42"),
        ("/%61dmin", "/admin"),  # an escaped unreserved letter is the letter
        ("/%7Euser", "/~user"),
        ("/admin/../public", "/public"),
        ("/public/../admin/x", "/admin/x"),
        ("/admin/./x", "/admin/x"),
        ("//admin", "/admin"),
        ("/admin//x", "/admin/x"),
        ("/../admin", "/admin"),  # no climbing above the root
        ("/%2e%2e/admin", "/admin"),  # escaped dots are dots
        ("/public/%2E%2E/admin", "/admin"),
        ("/a%2Fb", "/a%2Fb"),  # an escaped slash stays one segment, undecoded
        ("/a%2fb", "/a%2Fb"),
        ("/caf%c3%a9", "/caf%C3%A9"),  # other escapes kept, hex upper-cased
        ("/admin/", "/admin/"),
        ("/admin/..", "/"),
        ("/x#frag", "/x"),
    ],
)
def test_normalised_path(target: str, path: str) -> None:
    assert normalise_path(target) == path


@pytest.mark.parametrize(
    "target", ["admin", "*", "http://h/x", "/a b", "/a\tb", "/%zz", "/%4", "/a%00b", "/\x7f"]
)
def test_targets_that_are_not_paths_are_refused(target: str) -> None:
    assert normalise_path(target) is None


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        ("/health", ["/health"], ["/health/", "/healthz", "/health/x"]),
        ("/orders/{*}", ["/orders/1", "/orders/a%2Fb"], ["/orders", "/orders/", "/orders/1/2"]),
        ("/admin/{**}", ["/admin", "/admin/", "/admin/x", "/admin/x/y/"], ["/administrator"]),
        ("/{**}", ["/", "/x", "/x/y"], []),
        ("/*", ["/", "/anything/at/all"], []),  # Kyma reads /* as /{**}
        ("/v1/{*}/items", ["/v1/a/items"], ["/v1/items", "/v1/a/b/items"]),
    ],
)
def test_apirule_v2_patterns(pattern: str, yes: list[str], no: list[str]) -> None:
    compiled = PathPattern(pattern)
    for path in yes:
        assert compiled.matches(path), path
    for path in no:
        assert not compiled.matches(path), path


@pytest.mark.parametrize(
    "pattern", ["admin", "/a/{**}/b", "/a*", "/a/{*}x", "/a/../b", "/a b", "/a?b", "/{***}"]
)
def test_bad_patterns_are_config_errors(pattern: str) -> None:
    with pytest.raises(ConfigError) as err:
        PathPattern(pattern)
    assert pattern in str(err.value)


ADMIN_FIRST = RouteTable([(["/admin/{**}"], ["GET"]), (["/{**}"], [])])


@pytest.mark.parametrize(
    "target",
    [
        "/admin/users",
        "/%61dmin/users",
        "/public/../admin/users",
        "//admin/users",
        "/./admin/users",
        "/%2e%2e/admin/users",
        "/admin",
    ],
)
def test_tricks_land_on_the_admin_route(target: str) -> None:
    assert ADMIN_FIRST.match("GET", target).index == 0


def test_first_match_wins_in_file_order_and_methods_are_exact() -> None:
    table = RouteTable([(["/orders/{*}"], ["GET"]), (["/orders/{*}"], ["POST"])])
    assert table.match("GET", "/orders/1").index == 0
    assert table.match("POST", "/orders/1").index == 1
    refused = table.match("DELETE", "/orders/1")
    assert (refused.status, refused.allow) == (405, ("GET", "POST"))
    assert table.match("get", "/orders/1").status == 405  # methods are case-sensitive
    assert table.match("GET", "/customers").status == 404
    assert table.match("GET", "orders").status == 400


def test_a_bad_method_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        RouteTable([(["/x"], ["GE T"])])


@pytest.mark.parametrize(
    "target",
    ["/public/..;/admin", "/public/..%2Fadmin", "/x/%2e%2e%2fadmin", "/p/..%5cadmin", "/a\\..\\b"],
)
def test_a_dot_segment_only_a_workload_would_see_is_refused(target: str) -> None:
    """Servlet `..;` and decoded-slash `..%2F` tricks are 400, never a path for the rules."""
    assert normalise_path(target) is None


def test_escaped_slashes_without_dots_stay_one_segment() -> None:
    assert normalise_path("/public/a%2Fb") == "/public/a%2Fb"
    assert normalise_path("/a;b/c") == "/a;b/c"
