"""Headless Chromium with a client certificate: NSS db, managed policy, DevTools over a pipe.

How Chromium finds what these tests give it:
- trust and client certificates: the NSS database `$HOME/.pki/nssdb` (certutil, pk12util),
  so each run gets its own temporary HOME;
- which certificate to send without a picker: the managed policy
  `AutoSelectCertificateForUrls`, read only from /etc/chromium/policies/managed/ (no flag
  moves it). Where the kernel lets us (root, `unshare -m`), Chromium runs in a private mount
  namespace with a temporary directory bind-mounted on /etc/chromium, so nothing is written
  to /etc and parallel runs never see each other's policy. Otherwise (root without
  namespaces) one uniquely named file is written to /etc/chromium/policies/managed/, held
  under a lock so no two exist at once (two are not merged and Chromium may hang), and
  removed in `finally`;
- the navigation's outcome: the DevTools protocol over `--remote-debugging-pipe` (fd 3 in,
  fd 4 out, NUL-separated JSON): `Page.navigate` answers `errorText` on a failed
  navigation, where `--dump-dom` would print nothing.
Every Chromium runs under a deadline and its process group is killed in `finally`.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ETC = Path("/etc/chromium")
MANAGED = ETC / "policies" / "managed"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)


def missing_tools() -> list[str]:
    """The programs these tests need that are not on PATH (empty: all there)."""
    return [t for t in ("chromium", "certutil", "pk12util") if shutil.which(t) is None]


@functools.cache
def can_unshare() -> bool:
    """True when a private mount namespace with a bind mount works here (root, CAP_SYS_ADMIN)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or not ETC.is_dir():
        return False
    probe = ["unshare", "-m", "mount", "--bind", str(ETC), str(ETC)]
    return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0


def nss_home(home: Path, root: Path, p12: Path | None = None, password: str = "") -> Path:
    """A HOME whose NSS db trusts `root` for TLS servers and holds `p12` (if given)."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    sql = f"sql:{db}"
    run = ["certutil", "-d", sql]
    subprocess.run([*run, "-N", "--empty-password"], check=True, timeout=30)
    subprocess.run([*run, "-A", "-n", "test root", "-t", "C,,", "-i", str(root)], check=True)
    if p12 is not None:
        cmd = ["pk12util", "-d", sql, "-i", str(p12), "-W", password]
        subprocess.run(cmd, check=True, timeout=30, capture_output=True)
    return home


def auto_select_policy(origin: str, issuer_cn: str) -> str:
    """The managed policy that picks the certificate issued by `issuer_cn` for `origin`."""
    rule = {"pattern": origin, "filter": {"ISSUER": {"CN": issuer_cn}}}
    return json.dumps({"AutoSelectCertificateForUrls": [json.dumps(rule)]})


@dataclass(frozen=True)
class Navigation:
    """What one page load ended with: a net error, or the page's title and text."""

    error: str | None
    title: str = ""
    text: str = ""


class DevTools:
    """A DevTools protocol client over Chromium's --remote-debugging-pipe."""

    def __init__(self, commands: int, replies: int) -> None:
        self.commands, self.replies = commands, replies
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.replies], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer over DevTools in time")
            chunk = os.read(self.replies, 65536)
            if not chunk:
                raise EOFError("Chromium closed its DevTools pipe (it exited)")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def call(
        self, method: str, deadline: float, session: str | None = None, **params: Any
    ) -> dict[str, Any]:
        """Send one command, return its result (events that arrive meanwhile are kept)."""
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result
            self.events.append(reply)

    def wait_event(self, method: str, deadline: float) -> dict[str, Any]:
        """The first event named `method` (already received or still to come)."""
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.events.append(self._read(deadline))

    def navigate(self, url: str, deadline: float, screenshot: Path | None = None) -> Navigation:
        """Open `url` in a new page; its net error, or its title and text once loaded.

        With `screenshot`, the loaded page is also written there as a PNG.
        """
        target = self.call("Target.createTarget", deadline, url="about:blank")["targetId"]
        attached = self.call("Target.attachToTarget", deadline, targetId=target, flatten=True)
        session = attached["sessionId"]
        self.call("Page.enable", deadline, session)
        result = self.call("Page.navigate", deadline, session, url=url)
        if result.get("errorText"):
            return Navigation(str(result["errorText"]))
        self.wait_event("Page.loadEventFired", deadline)
        script = "JSON.stringify([document.title, document.body.innerText])"
        value = self.call("Runtime.evaluate", deadline, session, expression=script)
        title, text = json.loads(value["result"]["value"])
        if screenshot is not None:
            shot = self.call("Page.captureScreenshot", deadline, session, format="png")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        return Navigation(None, title, text)


@contextmanager
def _policy_in_etc(policy: str) -> Iterator[None]:
    """One uniquely named policy file in /etc/chromium/policies/managed, alone, then removed."""
    MANAGED.mkdir(parents=True, exist_ok=True)
    with (Path(tempfile.gettempdir()) / "mtlskit-chromium-policy.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one test policy at a time: they are not merged
        path = MANAGED / f"mtlskit-test-{uuid.uuid4().hex}.json"
        try:
            path.write_text(policy)
            yield
        finally:
            path.unlink(missing_ok=True)


def _private_etc(tmp: Path, policy: str) -> Path:
    """A copy of /etc/chromium with only our policy, to bind-mount in a private namespace."""
    etc = tmp / "etc-chromium"
    shutil.copytree(ETC, etc, ignore=shutil.ignore_patterns("policies"))
    (etc / "policies" / "managed").mkdir(parents=True)
    (etc / "policies" / "managed" / "mtlskit-test.json").write_text(policy)
    return etc


@contextmanager
def browser(tmp: Path, home: Path, policy: str, timeout: float = 20.0) -> Iterator[Browser]:
    """Headless Chromium (HOME=`home`, managed `policy`), killed on exit.

    Every DevTools read gives up at `timeout` seconds from the start (TimeoutError), so a
    Chromium waiting for a certificate picker cannot hang a test. Its output goes to
    `tmp`/chromium.log.
    """
    deadline = time.monotonic() + timeout
    cmd_read, cmd_write = os.pipe()
    reply_read, reply_write = os.pipe()
    # fd 3 carries commands to Chromium and fd 4 its replies: bash puts them there
    # (via 10 and 11: the pipes' own numbers may be 3 or 4).
    script = f"exec 10<&{cmd_read} 11>&{reply_write}; exec 3<&10 4>&11 10<&- 11>&-; "
    argv = ["chromium", *FLAGS, f"--user-data-dir={tmp / 'profile'}", "about:blank"]
    unshare = can_unshare()
    if unshare:
        mount = f"mount --bind {shlex.quote(str(_private_etc(tmp, policy)))} {ETC} && "
        command = ["unshare", "-m", "bash", "-c", mount + script + 'exec "$@"', "bash", *argv]
    else:
        command = ["bash", "-c", script + 'exec "$@"', "bash", *argv]
    env = {**os.environ, "HOME": str(home)}
    with open(tmp / "chromium.log", "wb") as log, _maybe(not unshare, policy):
        proc = subprocess.Popen(
            command,
            env=env,
            pass_fds=(cmd_read, reply_write),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        os.close(cmd_read)
        os.close(reply_write)
        try:
            yield Browser(DevTools(cmd_write, reply_read), deadline)
        finally:
            os.close(cmd_write)
            os.close(reply_read)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


@dataclass(frozen=True)
class Browser:
    """A running Chromium and the deadline it must finish by."""

    devtools: DevTools
    deadline: float

    def navigate(self, url: str, screenshot: Path | None = None) -> Navigation:
        """Load `url` in a new page (see DevTools.navigate)."""
        return self.devtools.navigate(url, self.deadline, screenshot)


def load(url: str, tmp: Path, home: Path, policy: str, timeout: float = 20.0) -> Navigation:
    """One page load in a fresh headless Chromium (see `browser`)."""
    with browser(tmp, home, policy, timeout) as chromium:
        return chromium.navigate(url)


@contextmanager
def _maybe(in_etc: bool, policy: str) -> Iterator[None]:
    if in_etc:
        with _policy_in_etc(policy):
            yield
    else:
        yield
