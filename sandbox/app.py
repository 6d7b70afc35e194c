"""The sandbox's ASGI app: routing, bytes on the wire, and the waits the engine cannot do.

Per `/v1` request: route (404/405) -> API key (401) -> rate limit (429) ->
fault plan -> handler (an anomaly is passed into the send) -> late answer /
dropped connection. Every answer has
`X-Request-Id`; `/v1` answers past authentication carry `X-RateLimit-*`.
Sends add the idempotency protocol around `Engine.send`: replay, 422 reuse,
and waiting (up to `in_progress_wait_seconds`) for an in-flight original
before 409. Anything unexpected is logged and answered with a 500 envelope,
never a stack trace.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec

from runtime.asgi import Receive, Scope, Send, TooLarge, read_body
from runtime.logs import get_logger
from sandbox.asgi import Request, drop, route
from sandbox.clock import Clock
from sandbox.control import Control
from sandbox.dispatcher import WebhookDispatcher
from sandbox.engine import INVALID_JSON, Answer, Engine
from sandbox.errors import ApiError
from sandbox.faults import FaultPlan
from sandbox.idempotency import (
    MAX_KEY_LENGTH,
    InProgress,
    Replay,
    Reuse,
    StoredResponse,
    canonical_json,
    fingerprint,
)
from sandbox.identifiers import request_id as new_request_id
from sandbox.metrics import SandboxMetrics
from sandbox.ratelimit import RateDecision
from sandbox.wire import Single, encoder

log = get_logger("sandbox.app")

MAX_BODY: Final = 64 * 1024
MAX_CONTROL_BODY: Final = 1024 * 1024
_REPLAYED: Final = (b"idempotent-replayed", b"true")
_QUIET: Final = FaultPlan()
_HEALTH_BODY: Final = {"status": "ok"}


class SandboxApp:
    def __init__(
        self,
        engine: Engine,
        control: Control,
        clock: Clock,
        metrics: SandboxMetrics,
        dispatcher: WebhookDispatcher | None,
    ) -> None:
        self._engine = engine
        self._control = control
        self._clock = clock
        self._metrics = metrics
        self._dispatcher = dispatcher
        # Idempotency keys in progress -> set when their answer is stored or dropped.
        self._waiters: dict[str, asyncio.Event] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, new_request_id())
        try:
            path = request.path
            if path.startswith("/v1/"):
                await self._api(request, scope, receive, send)
            elif path.startswith("/_sandbox/"):
                await self._control_api(request, scope, receive, send)
            else:
                error = ApiError(404, "resource_not_found", f"no endpoint at {path}")
                await self._respond(
                    send, request, "unknown", self._engine.error(error, request.rid)
                )
        except Exception:
            log.exception("request_crashed", path=request.path, request_id=request.rid)
            error = ApiError(500, "internal_error", "the sandbox failed; see its log")
            # If the answer had started, uvicorn refuses a new start; it then closes the connection.
            with contextlib.suppress(Exception):
                await self._respond(send, request, "crash", self._engine.error(error, request.rid))

    async def _api(self, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        engine = self._engine
        parts = request.path[4:].split("/")
        method = request.method
        endpoint, number_id, message_id = route(parts, method)
        # Per-number tallies only for configured numbers, whatever ids clients send.
        audited = number_id if number_id in engine.config.accounts else None
        if endpoint == "health":
            body = encoder.encode(Single(_HEALTH_BODY, request.rid))
            await self._respond(send, request, endpoint, Answer(200, body))
            return
        if endpoint in {"unknown", "method"}:
            missing = endpoint == "unknown"
            status, code = (404, "resource_not_found") if missing else (405, "invalid_request")
            error = ApiError(status, code, f"no {method} endpoint at {request.path}")
            await self._respond(send, request, endpoint, engine.error(error, request.rid))
            return
        engine.audit.requests += 1
        now = self._clock.now()
        write = method != "GET"
        denied = engine.authenticate(request.authorization)
        if denied is not None:
            rate = engine.peek_token(write, now)
            await self._respond(send, request, endpoint, engine.error(denied, request.rid), rate)
            return
        rate = engine.take_token(write, now)
        if not rate.allowed:
            engine.audit.rate_limited(audited)
            error = ApiError(
                429, "rate_limit_exceeded", "rate limit exceeded", retry_after=rate.retry_after
            )
            await self._respond(send, request, endpoint, engine.error(error, request.rid), rate)
            return
        faults = engine.config.faults
        is_send = endpoint == "send"
        plan = engine.faults(send=is_send) if faults.scope == "all" or is_send else _QUIET
        if plan.server_error is not None:
            engine.audit.fault(audited, "server_errors_injected")
            status, code = plan.server_error
            error = ApiError(status, code, "injected server error")
            await self._respond(send, request, endpoint, engine.error(error, request.rid), rate)
            return
        if plan.drop_before:
            engine.audit.fault(audited, "dropped_connections")
            await drop(send)
            return
        if endpoint == "send":
            answer = await self._send(request, receive, number_id, plan)
        else:
            if plan.latency > 0:
                await asyncio.sleep(plan.latency)
            now = self._clock.now()
            if endpoint == "get_message":
                answer = engine.get_message(number_id, message_id, request.rid, now)
            elif endpoint == "accounts":
                query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
                answer = engine.accounts(query.get("status", "all"), request.rid)
            else:
                answer = engine.me(request.rid)
        if answer is None:
            return
        await self._finish(send, request, endpoint, answer, rate=rate, plan=plan, number_id=audited)

    async def _send(
        self, request: Request, receive: Receive, number_id: str, plan: FaultPlan
    ) -> Answer | None:
        engine = self._engine
        key = request.idempotency_key
        if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
            message = f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} characters"
            error = ApiError(400, "invalid_field_value", message, "Idempotency-Key")
            return engine.error(error, request.rid)
        content_type = request.content_type or ""
        if not content_type.lower().startswith("application/json"):
            message = "send JSON with Content-Type: application/json"
            error = ApiError(400, "invalid_request", message, "Content-Type")
            return engine.error(error, request.rid)
        body = await read_body(receive, MAX_BODY)
        if body is None:
            return None
        if isinstance(body, TooLarge):
            error = ApiError(413, "invalid_request", f"the body is over {MAX_BODY} bytes")
            return engine.error(error, request.rid)
        document: Any
        try:
            document = msgspec.json.decode(body)
            canonical = canonical_json(document)
        except msgspec.DecodeError:
            document, canonical = INVALID_JSON, body
        if key is None:
            if plan.latency > 0:
                await asyncio.sleep(plan.latency)
            answer = engine.send(
                number_id, document, request.rid, None, self._clock.now(), anomaly=plan.anomaly
            )
            self._announce(answer)
            return answer
        print_ = fingerprint("POST", request.path, canonical)
        audited = number_id if number_id in engine.config.accounts else None
        early = await self._claim(key, print_, audited, request.rid)
        if early is not None:
            return early
        stored = False
        try:
            if plan.latency > 0:
                await asyncio.sleep(plan.latency)
            answer = engine.send(
                number_id, document, request.rid, key, self._clock.now(), anomaly=plan.anomaly
            )
            if answer.storable:
                response = StoredResponse(
                    answer.status, answer.body, number_id, answer.template, answer.content_type
                )
                engine.idempotency.complete(key, response)
                stored = True
        finally:
            if not stored:
                engine.idempotency.abort(key)
            waiter = self._waiters.pop(key, None)
            if waiter is not None:
                waiter.set()
        self._announce(answer)
        return answer

    async def _claim(self, key: str, print_: str, number_id: str | None, rid: str) -> Answer | None:
        """Reserve `key` (None) or answer for it: a replay, 422, or 409 after waiting."""
        engine = self._engine
        loop = asyncio.get_running_loop()
        deadline = loop.time() + engine.config.idempotency.in_progress_wait_seconds
        while True:
            decision = engine.idempotency.begin(key, print_, self._clock.now())
            if isinstance(decision, Replay):
                stored = decision.response
                engine.audit.replayed(stored.phone_number_id, stored.template)
                return Answer(
                    stored.status,
                    stored.body,
                    template=stored.template,
                    replayed=True,
                    content_type=stored.content_type,
                )
            if isinstance(decision, Reuse):
                engine.audit.key_conflict(number_id, in_progress=False)
                message = "this Idempotency-Key was used with a different request"
                return engine.error(ApiError(422, "idempotency_key_reuse", message), rid)
            if not isinstance(decision, InProgress):
                self._waiters[key] = asyncio.Event()
                return None
            waiter = self._waiters.get(key)
            remaining = deadline - loop.time()
            if waiter is None or remaining <= 0:
                break
            try:
                await asyncio.wait_for(waiter.wait(), remaining)
            except TimeoutError:
                break
        engine.audit.key_conflict(number_id, in_progress=True)
        message = "a request with this Idempotency-Key is still in progress"
        return engine.error(ApiError(409, "idempotency_in_progress", message), rid)

    def _announce(self, answer: Answer) -> None:
        if answer.message is not None and self._dispatcher is not None:
            self._dispatcher.enqueue(answer.message)

    async def _finish(
        self,
        send: Send,
        request: Request,
        endpoint: str,
        answer: Answer,
        *,
        rate: RateDecision,
        plan: FaultPlan,
        number_id: str | None,
    ) -> None:
        if plan.late > 0:
            self._engine.audit.fault(number_id, "late_answers")
            await asyncio.sleep(plan.late)
        if plan.drop_after:
            self._engine.audit.fault(number_id, "dropped_connections")
            await drop(send)
            return
        await self._respond(send, request, endpoint, answer, rate)

    async def _control_api(
        self, request: Request, scope: Scope, receive: Receive, send: Send
    ) -> None:
        control = self._control
        now = self._clock.now()
        name = request.path[len("/_sandbox/") :]
        method = request.method
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        answer: Answer | None = None
        if name == "audit" and method == "GET":
            answer = control.audit(request.rid, now)
        elif name == "reset" and method == "POST":
            answer = control.reset(query, request.rid, now)
        elif name == "config" and method == "GET":
            answer = control.get_config(request.rid)
        elif name == "config" and method == "PATCH":
            body = await read_body(receive, MAX_CONTROL_BODY)
            if body is None:
                return
            if isinstance(body, TooLarge):
                body = b"too large"
            answer = control.patch_config(body, request.rid, now)
        elif name == "messages" and method == "GET":
            answer = control.messages(query, request.rid, now)
        elif name in {"audit", "reset", "config", "messages"}:
            error = ApiError(405, "invalid_request", f"{method} is not allowed here")
            answer = self._engine.error(error, request.rid)
        else:
            error = ApiError(404, "resource_not_found", f"no control endpoint {name!r}")
            answer = self._engine.error(error, request.rid)
        await self._respond(send, request, "control", answer)

    async def _respond(
        self,
        send: Send,
        request: Request,
        endpoint: str,
        answer: Answer,
        rate: RateDecision | None = None,
    ) -> None:
        body = answer.body
        headers = [
            (b"content-type", answer.content_type),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request.rid.encode()),
        ]
        if rate is not None:
            headers.append((b"x-ratelimit-limit", str(rate.limit).encode()))
            headers.append((b"x-ratelimit-remaining", str(rate.remaining).encode()))
            headers.append((b"x-ratelimit-reset", str(rate.reset_at).encode()))
        if answer.retry_after is not None:
            headers.append((b"retry-after", str(answer.retry_after).encode()))
        if answer.replayed:
            headers.append(_REPLAYED)
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self._metrics.request(endpoint, answer.status)
