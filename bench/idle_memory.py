"""Memory per idle mTLS connection, and a new client's latency while they are held.

    .venv/bin/python bench/idle_memory.py [--connections 10000] [--no-uvloop]

Starts `mtlskit gateway` (one worker) in front of a tiny upstream, opens N mTLS
connections that each make one request and then stay open and idle, and reads the
gateway's RSS (/proc/PID/status VmRSS) before and after: the difference divided by N is
the cost of one idle connection (TLS session with a client certificate, HTTP state,
buffers). With the N connections held, it times a new client's whole exchange (TCP
connect, mTLS handshake, request, answer) a few times. Certificates come from mtlskit's
own CA in a temporary directory. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mtlskit.pki import CertificateAuthority

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"hello\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Upstream(ThreadingHTTPServer):
    request_queue_size = 1024  # socketserver's default of 5 drops SYNs under a burst
    daemon_threads = True


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _exchange(ctx: ssl.SSLContext, port: int, hold: list[asyncio.StreamWriter]) -> None:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
    )
    writer.write(REQUEST)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    hold.append(writer)


async def _open(ctx: ssl.SSLContext, port: int, count: int) -> list[asyncio.StreamWriter]:
    hold: list[asyncio.StreamWriter] = []
    batch = 200  # keep the gateway's accept queue and our handshakes in step
    for start in range(0, count, batch):
        await asyncio.gather(
            *(_exchange(ctx, port, hold) for _ in range(min(batch, count - start)))
        )
    return hold


async def _new_client_ms(ctx: ssl.SSLContext, port: int) -> float:
    started = time.perf_counter()
    hold: list[asyncio.StreamWriter] = []
    await _exchange(ctx, port, hold)
    elapsed = (time.perf_counter() - started) * 1000
    hold[0].close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 1024  # each side holds one descriptor per connection
    if hard < need:
        print(f"error: the open-files limit is {hard}, {need} are needed", file=sys.stderr)
        return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))

    upstream = _Upstream(("127.0.0.1", 0), _Hello)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with CertificateAuthority.create(base / "ca", name="Bench Root CA") as ca:
            ca.issue_server("localhost", ["localhost", "127.0.0.1"]).write(base, "server")
            ca.issue_client("bench", ["bench.example.org"], unit="bench").write(base, "client")
        cmd = [
            sys.executable, "-m", "mtlskit", "gateway", "--listen", "127.0.0.1:0",
            "--upstream", f"http://127.0.0.1:{upstream.server_address[1]}",
            "--cert", str(base / "server.chain.pem"), "--key", str(base / "server.key"),
            "--client-ca", str(base / "ca" / "root.crt"), "--allow-all", "--workers", "1",
            "--no-access-log", "--reload-interval", "0s",
            "--max-connections", str(args.connections + 100), "--idle-timeout", "3600s",
        ]  # fmt: skip
        if args.no_uvloop:
            cmd.append("--no-uvloop")
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                if "mTLS gateway on" in line:
                    port = int(line.split("mTLS gateway on 127.0.0.1:")[1].split()[0])
                    break
            else:
                raise RuntimeError("the gateway did not start")
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            ctx = ssl.create_default_context(cafile=str(base / "ca" / "root.crt"))
            ctx.load_cert_chain(base / "client.chain.pem", base / "client.key")
            loop = asyncio.new_event_loop()
            # warm up: the first connections load code and fill caches
            loop.run_until_complete(_open(ctx, port, 50))
            time.sleep(0.5)
            before = _rss_kib(proc.pid)
            started = time.monotonic()
            held = loop.run_until_complete(_open(ctx, port, args.connections))
            opened_s = time.monotonic() - started
            time.sleep(1.0)
            after = _rss_kib(proc.pid)
            latencies = [loop.run_until_complete(_new_client_ms(ctx, port)) for _ in range(20)]
            result = {
                "connections": len(held),
                "rss_before_kib": before,
                "rss_after_kib": after,
                "kib_per_idle_connection": round((after - before) / len(held), 1),
                "new_client_ms_median": round(statistics.median(latencies), 2),
                "new_client_ms_max": round(max(latencies), 2),
                "open_seconds": round(opened_s, 1),
                "loop": "asyncio" if args.no_uvloop else "uvloop",
            }
            print(json.dumps(result))
            for writer in held:
                writer.close()
            loop.close()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            upstream.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
