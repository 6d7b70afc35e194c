"""The bridge's Kafka producer: idempotent, `acks=all`, bounded, answerable in time.

Contract of `StatusProducer.publish`: it returns only after the broker
acknowledged the record (all in-sync replicas have it), and raises
`Unavailable` otherwise: when more than `max_in_flight` produces are already
waiting (`overloaded`), when the acknowledgement does not come within
`produce_timeout_seconds` (`timeout`), when the client reports an error
(`kafka_error`), or before `start()` has connected (`not_ready`). After a
`timeout` the record may still reach the topic later; the sender then retries
and the fold's idempotence absorbs the duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, Final, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from runtime.logs import get_logger
from webhook_bridge import metrics
from webhook_bridge.settings import BridgeSettings

log = get_logger(__name__)

# `not_ready`: not connected yet (the service is starting); nothing was sent.
Cause = Literal["not_ready", "overloaded", "timeout", "kafka_error"]
Headers = Sequence[tuple[str, bytes]]

# Long enough to ride out a broker restart inside aiokafka's own retries; the HTTP
# answer is bounded separately by `produce_timeout_seconds`.
_REQUEST_TIMEOUT_MS: Final = 30_000
_PROBE_INTERVAL_SECONDS: Final = 2.0
_START_BACKOFF_MAX_SECONDS: Final = 5.0


class Unavailable(Exception):  # noqa: N818 - named for what the caller answers (503)
    """The record was not acknowledged; `cause` says why."""

    def __init__(self, cause: Cause) -> None:
        super().__init__(cause)
        self.cause: Cause = cause


class KafkaHealth:
    """The latest signal about the broker (a produce or a metadata probe), for `/healthz`."""

    def __init__(self) -> None:
        self._ok = False
        self._detail = "not started"

    def record(self, ok: bool, detail: str) -> None:
        if ok != self._ok:
            # Transitions only: one line per outage, not one per refused webhook.
            if ok:
                log.info("kafka_reachable", detail=detail)
            else:
                log.warning("kafka_unreachable", detail=detail)
        self._ok = ok
        self._detail = detail
        metrics.KAFKA_UP.set(1 if ok else 0)

    def check(self) -> tuple[bool, str]:
        return self._ok, self._detail


def _consume_outcome(future: asyncio.Future[Any]) -> None:
    # A record we stopped waiting for may still fail later; retrieve the error so
    # asyncio does not report it as never retrieved.
    if not future.cancelled():
        future.exception()


class StatusProducer:
    """Wraps one `AIOKafkaProducer` for the status topic; see the module docstring."""

    def __init__(self, settings: BridgeSettings) -> None:
        self._settings = settings
        self._topic = settings.topic
        self._timeout = settings.produce_timeout_seconds
        self._max_in_flight = settings.max_in_flight
        self._in_flight = 0
        self.health = KafkaHealth()
        # Created by `start()`: an AIOKafkaProducer that is built but never stopped
        # is reported as unclosed, so none exists before the service needs one.
        self._producer: AIOKafkaProducer | None = None
        self._connected = False

    def _client(self) -> AIOKafkaProducer:
        if self._producer is None:
            settings = self._settings
            self._producer = AIOKafkaProducer(
                bootstrap_servers=settings.bootstrap_servers,
                enable_idempotence=True,
                acks="all",
                linger_ms=settings.linger_ms,
                request_timeout_ms=_REQUEST_TIMEOUT_MS,
                max_request_size=max(1_048_576, settings.max_body_bytes * 2),
            )
        return self._producer

    async def start(self, stop: asyncio.Event) -> bool:
        """Connect, retrying while the broker is unreachable; False if `stop` came first
        (then nothing is left open)."""
        delay = 0.2
        producer = self._client()
        while not stop.is_set():
            try:
                await producer.start()
            except KafkaError as error:
                self.health.record(False, f"cannot connect: {type(error).__name__}")
                log.warning("kafka_connect_retry", error=type(error).__name__, delay=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, _START_BACKOFF_MAX_SECONDS)
            else:
                self._connected = True
                self.health.record(True, "connected")
                return True
        await producer.stop()
        return False

    async def stop(self) -> None:
        """Flush what is buffered (waiting for acknowledgements), then close."""
        if self._producer is not None:
            await self._producer.stop()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def publish(self, key: bytes | None, value: bytes, headers: Headers) -> None:
        """Produce one record and wait for the broker's acknowledgement, or raise `Unavailable`."""
        producer = self._producer
        if producer is None or not self._connected:
            raise Unavailable("not_ready")
        if self._in_flight >= self._max_in_flight:
            metrics.PRODUCE_FAILURES.labels("overloaded").inc()
            raise Unavailable("overloaded")
        self._in_flight += 1
        metrics.IN_FLIGHT.inc()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                future = await producer.send(self._topic, value, key=key, headers=list(headers))
                future.add_done_callback(_consume_outcome)
                # Shielded: a timeout here must not cancel aiokafka's own future.
                await asyncio.shield(future)
        except TimeoutError:
            metrics.PRODUCE_FAILURES.labels("timeout").inc()
            self.health.record(False, "produce timed out")
            raise Unavailable("timeout") from None
        except KafkaError as error:
            metrics.PRODUCE_FAILURES.labels("kafka_error").inc()
            self.health.record(False, f"produce failed: {type(error).__name__}")
            raise Unavailable("kafka_error") from error
        finally:
            self._in_flight -= 1
            metrics.IN_FLIGHT.dec()
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)
        self.health.record(True, "produced")

    async def probe(self, stop: asyncio.Event) -> None:
        """Refresh the health signal with a metadata request every few seconds until `stop`."""
        client = self._client().client
        while not stop.is_set():
            try:
                async with asyncio.timeout(_PROBE_INTERVAL_SECONDS * 2):
                    updated = await client.force_metadata_update()
            except TimeoutError:
                updated = False
            if updated:
                self.health.record(True, "metadata ok")
            else:
                self.health.record(False, "metadata request failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _PROBE_INTERVAL_SECONDS)
