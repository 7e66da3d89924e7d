"""HTTP/2 and gRPC through mtlskit vs nginx: server CPU per request, in one run (issue 14).

Not a test: run it by hand (`bench/h2bench.py --help`). It starts, on 127.0.0.1:
- an upstream nginx (HTTP/1.1, a 20-byte answer) and a grpcio server (h2c, unary echo),
  both on the load core;
- nginx with `listen ... ssl http2` (proxy_pass to the upstream, keepalive 64) and
  `grpc_pass` to the grpcio server, on the server core;
- `mtlskit gateway` with an http:// upstream (h2 clients translated to HTTP/1.1), and a
  second one with an h2c:// upstream (gRPC), on the server core, one worker each;
and drives them with a load generator of ours on the load core that presents a client
certificate (h2load cannot): N TLS connections with ALPN h2, S streams in flight on each
(python h2), or a grpcio client with unary calls in flight. The figure is the server's CPU
time (every process of the target, from /proc) per completed request; it does not depend
on which side is the bottleneck. Only ratios within one run mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

SERVER_CPU, LOAD_CPU = "1", "0"
TICK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of pid and every descendant alive now."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
            for child in Path(f"/proc/{p}/task/{p}/children").read_text().split():
                todo.append(int(child))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port}")


@contextmanager
def started(argv: list[str], cpu: str, port: int, what: str, log: Path) -> Iterator[int]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", cpu, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_port(port, proc, what)
        yield proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def make_pki(work: Path) -> dict[str, Path]:
    from mtlskit.pki import CertificateAuthority

    out = work / "pki"
    if not (out / "server.chain.pem").exists():
        out.mkdir(parents=True, exist_ok=True)
        with CertificateAuthority.create(work / "ca", name="h2 Bench Root") as ca:
            ca.issue_server("localhost", ["localhost", "127.0.0.1"]).write(out, "server")
            ca.issue_client("bench", ["bench.example.org"], validity=timedelta(days=30)).write(
                out, "client"
            )
        shutil.copy(work / "ca" / "root.crt", out / "root.crt")
    return {p.stem + p.suffix: p for p in out.iterdir()}


NGINX = """worker_processes 1; daemon off; master_process on; pid {run}/{name}.pid;
error_log {run}/{name}.error.log error;
events {{ worker_connections 8192; }}
http {{
  access_log off; keepalive_requests 10000000; keepalive_timeout 120s;
  http2_max_requests 10000000; http2_max_concurrent_streams 128;
  client_body_temp_path {run}/{name}-body; proxy_temp_path {run}/{name}-proxy;
  fastcgi_temp_path {run}/{name}-f; uwsgi_temp_path {run}/{name}-u; scgi_temp_path {run}/{name}-s;
  {body}
}}
"""
UPSTREAM = """server {{ listen 127.0.0.1:{port} backlog=4096;
    location / {{ default_type text/plain; return 200 "hello from upstream\\n"; }} }}"""
FRONT = """upstream up {{ server 127.0.0.1:{up}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port} ssl http2 backlog=4096;
    ssl_certificate {pki}/server.chain.pem; ssl_certificate_key {pki}/server.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_client_certificate {pki}/root.crt;
    ssl_verify_client on; ssl_verify_depth 2;
    location /bench.Echo/ {{ grpc_pass grpc://127.0.0.1:{grpc};
      grpc_set_header X-Client-DN $ssl_client_s_dn; }}
    location / {{ proxy_pass http://up; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header X-Client-DN $ssl_client_s_dn; }} }}"""

GRPC_SERVER = """
import sys, time, grpc
from concurrent import futures
def echo(request, context):
    return request
handler = grpc.method_handlers_generic_handler("bench.Echo", {
    "Call": grpc.unary_unary_rpc_method_handler(echo)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
server.wait_for_termination()
"""


def h2_load(port: int, pki: dict[str, Path], conns: int, streams: int, dur: float) -> int:
    """Requests completed in dur seconds over conns h2 connections, streams in flight each."""
    import h2.config
    import h2.connection
    import h2.events

    ctx = ssl.create_default_context(cafile=str(pki["root.crt"]))
    ctx.load_cert_chain(str(pki["client.chain.pem"]), str(pki["client.key"]))
    ctx.set_alpn_protocols(["h2"])
    socks, machines = [], []
    for _ in range(conns):
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        s.sendall(c.data_to_send())
        socks.append(s)
        machines.append(c)
    headers = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/"),
    ]

    def send(c: h2.connection.H2Connection) -> None:
        c.send_headers(c.get_next_available_stream_id(), headers, end_stream=True)

    for s, c in zip(socks, machines, strict=True):
        for _ in range(streams):
            send(c)
        s.sendall(c.data_to_send())
    import selectors

    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
    done, end = 0, time.monotonic() + dur
    while time.monotonic() < end:
        for key, _ in sel.select(0.5):
            i = key.data
            s, c = socks[i], machines[i]
            data = s.recv(262144)
            if not data:
                raise SystemExit("server closed a connection")
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.StreamEnded):
                    done += 1
                    send(c)
                elif isinstance(ev, h2.events.DataReceived):
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset):
                    raise SystemExit(f"stream reset: {ev}")
            out = c.data_to_send()
            if out:
                s.sendall(out)
    for s in socks:
        s.close()
    return done


def grpc_load(port: int, pki: dict[str, Path], inflight: int, dur: float) -> int:
    """Unary calls completed in dur seconds, inflight at once over one TLS channel."""
    import threading

    import grpc

    creds = grpc.ssl_channel_credentials(
        pki["root.crt"].read_bytes(),
        pki["client.key"].read_bytes(),
        pki["client.chain.pem"].read_bytes(),
    )
    channel = grpc.secure_channel(
        f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "localhost")]
    )
    call = channel.unary_unary("/bench.Echo/Call")
    call(b"warm", timeout=10)
    lock, count, end = threading.Lock(), [0], time.monotonic() + dur
    failures: list[BaseException] = []

    def again(fut: grpc.Future) -> None:
        if fut.exception() is not None:
            failures.append(fut.exception())
            return
        with lock:
            count[0] += 1
        if time.monotonic() < end:
            call.future(b"x" * 32, timeout=10).add_done_callback(again)

    for _ in range(inflight):
        call.future(b"x" * 32, timeout=10).add_done_callback(again)
    time.sleep(dur + 0.5)
    channel.close()
    if failures:
        raise SystemExit(f"gRPC calls failed: {failures[0]}")
    return count[0]


def measure(pid: int, run: str, argv: list[str], dur: float) -> float:
    """CPU-us per request of the target pid while the load (a child of ours) runs."""
    before = tree_cpu(pid)
    out = subprocess.run(
        ["taskset", "-c", LOAD_CPU, sys.executable, __file__, *argv, "--dur", str(dur)],
        capture_output=True,
        text=True,
        check=False,
    )
    cpu = tree_cpu(pid) - before
    if out.returncode != 0:
        raise SystemExit(f"{run}: load failed: {out.stderr[-800:]}")
    done = int(out.stdout.strip().splitlines()[-1])
    return cpu / done * 1e6 if done else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dur", type=float, default=5.0, help="seconds per measurement")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (median)")
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--streams", type=int, default=32, help="streams in flight per connection")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mtlskit-h2bench")
    ap.add_argument("--only", default="", help="run only the rows whose name has this text")
    ap.add_argument("--load", choices=["h2", "grpc"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    pki = make_pki(args.work)
    if args.load == "h2":
        print(h2_load(args.port, pki, args.conns, args.streams, args.dur))
        return
    if args.load == "grpc":
        print(grpc_load(args.port, pki, args.conns * args.streams, args.dur))
        return
    run = args.work / "run"
    run.mkdir(parents=True, exist_ok=True)
    ports = {k: free_port() for k in ("up", "grpc", "nginx", "gw", "gwgrpc")}
    (run / "up.conf").write_text(
        NGINX.format(run=run, name="up", body=UPSTREAM.format(port=ports["up"]))
    )
    front = FRONT.format(
        up=ports["up"], port=ports["nginx"], pki=pki["root.crt"].parent, grpc=ports["grpc"]
    )
    (run / "nginx.conf").write_text(NGINX.format(run=run, name="nginx", body=front))
    (run / "grpc_server.py").write_text(GRPC_SERVER)
    mtlskit = str(ROOT / ".venv" / "bin" / "mtlskit")
    common = [
        "--cert",
        str(pki["server.chain.pem"]),
        "--key",
        str(pki["server.key"]),
        "--client-ca",
        str(pki["root.crt"]),
        "--workers",
        "1",
        "--allow-all",
        "--no-access-log",
    ]
    gw = [
        mtlskit,
        "gateway",
        "--listen",
        f"127.0.0.1:{ports['gw']}",
        "--upstream",
        f"http://127.0.0.1:{ports['up']}",
        *common,
    ]
    gwg = [
        mtlskit,
        "gateway",
        "--listen",
        f"127.0.0.1:{ports['gwgrpc']}",
        "--upstream",
        f"h2c://127.0.0.1:{ports['grpc']}",
        *common,
    ]
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    rows: dict[str, list[float]] = {}
    servers = {  # name -> (argv, core, port, log)
        "up": ([nginx, "-c", str(run / "up.conf"), "-p", str(run)], LOAD_CPU, ports["up"]),
        "grpc": (
            [sys.executable, str(run / "grpc_server.py"), str(ports["grpc"])],
            LOAD_CPU,
            ports["grpc"],
        ),
        "nginx": (
            [nginx, "-c", str(run / "nginx.conf"), "-p", str(run)],
            SERVER_CPU,
            ports["nginx"],
        ),
        "gw": (gw, SERVER_CPU, ports["gw"]),
        "gwgrpc": (gwg, SERVER_CPU, ports["gwgrpc"]),
    }
    plan = [  # row, target server, load
        ("nginx h2 -> http/1.1", "nginx", ["--load", "h2", "--port", str(ports["nginx"])]),
        ("mtlskit h2 -> http/1.1", "gw", ["--load", "h2", "--port", str(ports["gw"])]),
        ("nginx grpc_pass", "nginx", ["--load", "grpc", "--port", str(ports["nginx"])]),
        ("mtlskit gRPC -> h2c", "gwgrpc", ["--load", "grpc", "--port", str(ports["gwgrpc"])]),
    ]
    plan = [p for p in plan if args.only in p[0]]
    wanted = ["up", "grpc", *dict.fromkeys(server for _, server, _ in plan)]
    load = ["--conns", str(args.conns), "--streams", str(args.streams), "--work", str(args.work)]
    with ExitStack() as stack:
        pids = {
            name: stack.enter_context(started(*servers[name], name, run / f"{name}.log"))
            for name in wanted
        }
        for _ in range(args.reps):
            for row, server, argv in plan:
                rows.setdefault(row, []).append(measure(pids[server], row, argv + load, args.dur))
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(
        f"\nserver CPU-us per request (median of {args.reps}, {args.dur:g} s each, "
        f"{args.conns} conns x {args.streams} streams)"
    )
    print("| target | CPU-us / request | requests per second per core | ratio to nginx |")
    print("|---|---:|---:|---:|")
    for name, v in med.items():
        ref = med.get("nginx h2 -> http/1.1" if "h2 " in name else "nginx grpc_pass")
        ratio = f"{v / ref:.2f}x" if ref else "-"
        print(f"| {name} | {v:,.1f} | {1e6 / v:,.0f} | {ratio} |")
    (args.work / "h2bench.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
