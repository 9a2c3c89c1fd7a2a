"""An event loop run in a daemon thread: how the test servers serve their aiohttp apps."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

Cleanup = Callable[[], Awaitable[None]]


class LoopThread:
    """Runs `setup()` on a fresh event loop in a daemon thread, then the loop until `stop()`,
    then the cleanup coroutine function that `setup` returned, then closes the loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, setup: Callable[[], Awaitable[Cleanup]], timeout_s: float = 30) -> None:
        """Returns once `setup` has finished; raises what it raised, or `RuntimeError` when it
        did not finish within `timeout_s`."""
        ready = threading.Event()
        errors: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                cleanup = loop.run_until_complete(setup())
            except BaseException as error:  # reported to the starting thread
                errors.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(cleanup())
            loop.close()

        self.loop = loop
        self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError(f"{self.name} did not start within {timeout_s} s")
        if errors:
            self.loop = self._thread = None
            raise errors[0]

    def stop(self, timeout_s: float = 30) -> None:
        """Stop the loop, let the cleanup run, and wait for the thread (no-op when stopped)."""
        if self.loop is None or self._thread is None:
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout_s)
        self.loop = self._thread = None
