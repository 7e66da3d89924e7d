"""`mtlskit demo`: the seed's whole flow on one machine: CA, gateway, three real clients."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["cmd_demo", "register"]


def register(groups: Any) -> None:
    """Add `mtlskit demo`."""
    p = groups.add_parser(
        "demo",
        help="show the whole mTLS flow working on this machine",
        description="Create a CA and certificates, start a workload and the mTLS gateway, "
        "make three real calls, then keep the gateway running until Ctrl-C.",
    )
    p.add_argument(
        "--dir",
        metavar="DIR",
        help="where the demo's CA and certificates live (default: ~/.local/share/mtlskit/demo)",
    )
    p.add_argument("--port", type=int, default=8443, help="gateway port (default 8443; 0: any)")
    p.add_argument(
        "--once",
        action="store_true",
        help="stop after the three calls; exit 0 only if each went as expected",
    )
    p.add_argument(
        "--browser",
        action="store_true",
        help="instead of the three calls, say how to make the call from your own browser "
        "(demo-client.p12, its password, where to import it, the URL)",
    )
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """mtlskit demo."""
    # Loaded here, not at the top: the demo pulls in the gateway, which other commands'
    # start-up should not pay for.
    from mtlskit.demo.certs import default_dir
    from mtlskit.demo.flow import run

    base = Path(args.dir) if args.dir else default_dir()
    return run(base, args.port, once=args.once, browser=args.browser)
