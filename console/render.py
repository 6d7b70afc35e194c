"""Rendering pages: the signed-in user, their CSRF token and the helpers every template uses."""

from __future__ import annotations

import math
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast

import jinja2
import markupsafe
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from console.access import Session, User, csrf_token, mask_number
from console.context import Console

TEMPLATES: Final = Path(__file__).with_name("templates")


def templates() -> Jinja2Templates:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(("html",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(number=number, ago=ago, when=when, duration=duration, pct=pct)
    return Jinja2Templates(env=environment)


def console_of(request: Request) -> Console:
    return cast(Console, request.app.state.console)


def user_of(request: Request) -> User:
    return cast(User, request.scope["user"])


def session_of(request: Request) -> Session | None:
    return cast(Session | None, request.scope.get("session"))


def phone_shown(user: User, phone: str) -> str:
    return phone if user.role.sees_numbers else mask_number(phone)


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    console = console_of(request)
    user: User | None = request.scope.get("user")
    session = session_of(request)
    token = csrf_token(console.settings.secret, session) if session is not None else ""
    return console.templates.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "csrf_token": token,
            "may_act": bool(user and user.role.may_act and session is not None),
            "show": (lambda phone: phone_shown(user, phone)) if user else mask_number,
            "now": datetime.now(UTC),
            **context,
        },
        status_code=status_code,
    )


def fragment(request: Request, template: str, **context: Any) -> str:
    console = console_of(request)
    return console.templates.get_template(template).render(
        {"request": request, "now": datetime.now(UTC), **context}
    )


def not_found(request: Request, what: str) -> Response:
    return page(request, "error.html", status_code=404, title="Not found", message=what)


def refused(request: Request, message: str, status_code: int = 403) -> Response:
    if request.headers.get("hx-request"):
        return HTMLResponse(f'<p class="flash error">{markupsafe.escape(message)}</p>', status_code)
    return page(request, "error.html", status_code=status_code, title="Refused", message=message)


def parse_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


# --- template filters -------------------------------------------------------------------


def number(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.0f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: datetime | float | None) -> str:
    if value is None:
        return "-"
    seconds = time.time() - (value.timestamp() if isinstance(value, datetime) else value)
    return duration(max(seconds, 0.0)) + " ago"


def duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"
