"""The checks every action passes before it runs: a session, the operator role, CSRF."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from console.access import CSRF_FIELD, csrf_valid
from console.render import console_of, refused, session_of, user_of
from console.web import csrf_from_header


async def action_form(request: Request) -> FormData | Response:
    """The action's form when it may run; otherwise the 403 page saying why."""
    session = session_of(request)
    if session is None:
        return refused(request, "actions need a signed-in session (sign in at /login)")
    if not user_of(request).role.may_act:
        return refused(request, f"{user_of(request).name} is a viewer: viewers cannot act")
    form = await request.form()
    presented = str(form.get(CSRF_FIELD, "")) or csrf_from_header(request.scope)
    if not csrf_valid(console_of(request).settings.secret, session, presented):
        return refused(request, "missing or invalid CSRF token: reload the page and try again")
    return form
