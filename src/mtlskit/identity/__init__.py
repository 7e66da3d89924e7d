"""Who the client is (PeerIdentity) and how the workload learns it: XFCC, RFC 9440, templates."""

from __future__ import annotations

from mtlskit.errors import IdentityHeaderError
from mtlskit.identity._headers import (
    TEMPLATE_OPERATORS,
    IdentityHeaders,
    build_identity_block,
    render_header_template,
    validate_header_template,
)
from mtlskit.identity._peer import (
    STRIPPED_HEADERS,
    XFCC_FIELDS,
    PeerIdentity,
)
from mtlskit.identity._wire import (
    XfccElement,
    from_headers,
    parse_xfcc,
    rfc9440_headers,
    xfcc_value,
)

__all__ = [
    "STRIPPED_HEADERS",
    "TEMPLATE_OPERATORS",
    "XFCC_FIELDS",
    "IdentityHeaderError",
    "IdentityHeaders",
    "PeerIdentity",
    "XfccElement",
    "build_identity_block",
    "from_headers",
    "parse_xfcc",
    "render_header_template",
    "rfc9440_headers",
    "validate_header_template",
    "xfcc_value",
]
