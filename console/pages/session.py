"""Signing in and out: a token in, a signed session cookie out (console/access.py)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console.access import SESSION_COOKIE, csrf_valid, issue_session
from console.render import console_of, page, refused, session_of


def _safe_next(target: str | None) -> str:
    """Only a path of this site: an open redirect would hand the session to anyone."""
    if not target:
        return "/campaigns"
    try:
        parts = urlsplit(target)
    except ValueError:  # `//[`: an unbalanced IPv6 host, no path of this site either
        return "/campaigns"
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/campaigns"
    return target


async def login_form(request: Request) -> Response:
    target = _safe_next(request.query_params.get("next"))
    return page(request, "login.html", next=target, error=None)


async def login(request: Request) -> Response:
    console = console_of(request)
    form = await request.form()
    token = str(form.get("token", ""))
    target = _safe_next(str(form.get("next", "")))
    user = console.settings.credentials.user_of(token.strip()) if token.strip() else None
    if user is None:
        return page(
            request, "login.html", status_code=401, next=target, error="That token is not valid."
        )
    settings = console.settings
    cookie = issue_session(settings.secret, user, time.time(), settings.session_seconds)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=settings.session_seconds,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/",
    )
    return response


async def logout(request: Request) -> Response:
    session = session_of(request)
    form = await request.form()
    if session is None or not csrf_valid(
        console_of(request).settings.secret, session, str(form.get("csrf_token", ""))
    ):
        return refused(request, "sign-out needs the page's CSRF token")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
