"""Headless chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`):
load a page, collect every console message, exception, log entry and network request, run
JavaScript in it, and take screenshots. No port, no extra package.

    with Chromium() as browser:
        page = browser.open(Path("report.html"))
        page.evaluate("document.title"); page.screenshot(Path("shot.png"))
        page.errors        # console errors, uncaught exceptions, error log entries

`find_chromium()` is None where no chromium is installed (tests skip then).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The chromium executable on PATH (or `$CHROMIUM`), None when there is none."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return shutil.which(explicit)
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


class ChromiumError(RuntimeError):
    """The browser did not answer as the protocol says (or not in time)."""


@dataclass
class Page:
    """One tab, attached with a session; events are recorded as they arrive."""

    browser: Chromium
    session: str
    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    loaded: bool = False

    def send(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (by value)."""
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": True})
        if "exceptionDetails" in reply:
            raise ChromiumError(f"{expression!r} threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = False, max_height: int = 16000) -> Path:
        """A PNG of the viewport (or of the whole page, up to `max_height` CSS pixels)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": size["width"],
                "height": min(size["height"], max_height), "scale": 1})
        data = self.send("Page.captureScreenshot", params, timeout=60.0)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    @property
    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error-level log entries, as text."""
        found = [f"console.{c['type']}: " + " ".join(str(a.get("value", a.get("description")))
                                                      for a in c.get("args", []))
                 for c in self.console if c.get("type") in ("error", "assert")]
        found += [f"exception: {e.get('exceptionDetails', {}).get('text')} "
                  f"{e.get('exceptionDetails', {}).get('exception', {}).get('description')}"
                  for e in self.exceptions]
        found += [f"log.{entry['entry']['level']} ({entry['entry'].get('source')}): "
                  f"{entry['entry'].get('text')} {entry['entry'].get('url', '')}"
                  for entry in self.log if entry["entry"].get("level") == "error"]
        return found


class Chromium:
    """A headless chromium process; `open(path)` loads a file in a fresh tab."""

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 1600
                 ) -> None:
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise ChromiumError("no chromium on PATH")
        self.size = (width, height)
        self._next_id = 0
        self._buffer = b""
        self._pages: dict[str, Page] = {}

    def __enter__(self) -> Chromium:
        self._profile = tempfile.TemporaryDirectory(prefix="wc-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        self._stderr = Path(self._profile.name) / "stderr.log"
        args = [self.executable, "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
                "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                "--mute-audio", f"--user-data-dir={self._profile.name}",
                f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]
        actions = [(os.POSIX_SPAWN_DUP2, to_browser_r, 3),
                   (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
                   (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 2, str(self._stderr),
                    os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
        self._pid = os.posix_spawn(self.executable, args, dict(os.environ),
                                   file_actions=actions)
        os.close(to_browser_r)
        os.close(from_browser_w)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(ChromiumError, OSError):
            self.send("Browser.close", timeout=10.0)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pid, _ = os.waitpid(self._pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.1)
        else:
            os.kill(self._pid, 9)
            os.waitpid(self._pid, 0)
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        self._profile.cleanup()

    def stderr(self) -> str:
        return self._stderr.read_text(errors="replace") if self._stderr.exists() else ""

    # ---- the protocol ----------------------------------------------------------------------

    def send(self, method: str, params: dict[str, Any] | None = None, *,
             session: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Send one command and wait for its reply, recording the events that come first."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        wanted = self._next_id
        reply = self._until(lambda m: m.get("id") == wanted, timeout, method)
        if "error" in reply:
            raise ChromiumError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def _until(self, done: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                self._record(message)
                if done(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChromiumError(f"no answer to {what} within {timeout} s; browser "
                                    f"stderr: {self.stderr()[-2000:]}")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise ChromiumError(f"the browser exited; stderr: {self.stderr()[-2000:]}")
                self._buffer += chunk

    def _record(self, message: dict[str, Any]) -> None:
        page = self._pages.get(message.get("sessionId", ""))
        if page is None or "method" not in message:
            return
        method, params = message["method"], message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            page.console.append(params)
        elif method == "Runtime.exceptionThrown":
            page.exceptions.append(params)
        elif method == "Log.entryAdded":
            page.log.append(params)
        elif method == "Page.loadEventFired":
            page.loaded = True
        elif method == "Network.requestWillBeSent":
            page.requests.append(params["request"]["url"])

    def open(self, path: Path, timeout: float = 60.0) -> Page:
        """Load a local file in a new tab and wait for its load event."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target,
                                                      "flatten": True})["sessionId"]
        page = Page(self, session)
        self._pages[session] = page
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride", {
            "width": self.size[0], "height": self.size[1], "deviceScaleFactor": 1,
            "mobile": False})
        page.send("Page.navigate", {"url": path.resolve().as_uri()})
        if not page.loaded:  # the event may have come with the navigation's reply
            self._until(lambda m: page.loaded, timeout, f"loading {path}")
        return page
