"""`mtlskit echo`: the echo workload in the foreground, to put behind a gateway under test."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["cmd_echo", "register"]


def register(groups: Any) -> None:
    """Add `mtlskit echo` (the same flags as `python -m mtlskit.demo.echo`)."""
    from mtlskit.demo.echo import add_arguments

    p = groups.add_parser(
        "echo",
        help="run the echo workload (the demo's upstream) until Ctrl-C",
        description="A workload to put behind an mTLS gateway: it answers every request "
        "with what it received (method, path, headers, body digest) and the client "
        "identity the gateway forwarded. /bytes?n=N, /slow?s=S and a /ws tunnel too.",
    )
    add_arguments(p)
    p.set_defaults(handler=cmd_echo)


def cmd_echo(args: argparse.Namespace) -> int:
    """mtlskit echo."""
    from mtlskit.demo.echo import serve

    return serve(args.host, args.port, tcp=args.tcp)
