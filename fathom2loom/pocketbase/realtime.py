"""PocketBase realtime (server-sent events): subscribe to topics and hear record events.

The server sends `PB_CONNECT` with a client id; subscriptions are set for that id with a POST
(as the superuser). Connections close when idle and after 30 minutes at most, and a reconnect
gets a new id with no replay, so this client reconnects and subscribes again forever. Callers must
treat events as wake-ups, not as the record of what happened.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from fathom2loom.errors import PocketBaseError
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.retry import backoff_delay

__all__ = ["RealtimeListener", "parse_sse"]

log = logging.getLogger(__name__)
Handler = Callable[[str, dict[str, Any]], None]


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs from a stream of SSE lines."""
    event: str = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


class RealtimeListener:
    """Runs in a thread: `run()` until `stop` is set, calling `on_event(topic, data)`."""

    def __init__(
        self,
        pb: PocketBase,
        topics: list[str],
        on_event: Handler,
        *,
        on_connect: Callable[[], None] | None = None,
        idle_timeout: float = 330.0,
    ) -> None:
        self.pb = pb
        self.topics = topics
        self.on_event = on_event
        self.on_connect = on_connect
        self.stop = threading.Event()
        self.connections = 0
        self._timeout = httpx.Timeout(10.0, read=idle_timeout)

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                self._listen()
                failures = 0
            except (httpx.HTTPError, PocketBaseError, ValueError) as exc:
                failures += 1
                log.info("realtime: connection lost (%s); reconnecting", type(exc).__name__)
            self.stop.wait(backoff_delay(max(failures, 1), 0.2, 10.0))

    def _listen(self) -> None:
        with (
            httpx.Client(timeout=self._timeout) as http,
            http.stream("GET", f"{self.pb.base_url}/api/realtime") as response,
        ):
            response.raise_for_status()
            for event, data in parse_sse(response.iter_lines()):
                if self.stop.is_set():
                    return
                payload = json.loads(data) if data else {}
                if event == "PB_CONNECT":
                    self._subscribe(payload["clientId"])
                elif event in self.topics or event.split("/")[0] + "/*" in self.topics:
                    self.on_event(event, payload)

    def _subscribe(self, client_id: str) -> None:
        self.pb.request(
            "POST", "/api/realtime", json={"clientId": client_id, "subscriptions": self.topics}
        )
        self.connections += 1
        log.info("realtime: listening to %s", ", ".join(self.topics))
        if self.on_connect is not None:
            self.on_connect()
