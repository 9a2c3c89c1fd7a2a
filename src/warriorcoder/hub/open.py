"""Which store `hub.backend` names: the one place that knows both implementations."""

from __future__ import annotations

from warriorcoder.config import HubConfig
from warriorcoder.hub.hf import HfHubStore
from warriorcoder.hub.local import LocalHubStore
from warriorcoder.hub.store import HubStore


def open_store(hub: HubConfig) -> HubStore:
    """The store for `hub.backend`: `LocalHubStore` (`local`) or `HfHubStore` (`hf`)."""
    if hub.backend == "local":
        return LocalHubStore(hub)
    return HfHubStore(hub)
