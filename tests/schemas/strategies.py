"""Hypothesis strategies for valid `broadcast.requests` events and for arbitrary JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from schemas.requests import (
    BroadcastCancelled,
    BroadcastPaused,
    BroadcastRequested,
    BroadcastResumed,
    Chunk,
    Recipient,
    RequestEvent,
    Sender,
)
from schemas.template import (
    Component,
    DocumentLink,
    DocumentParameter,
    ImageParameter,
    MediaLink,
    Parameter,
    PayloadParameter,
    Template,
    TextParameter,
    VideoParameter,
)

# Surrogates cannot be encoded as UTF-8, so no producer could send them.
_chars = st.characters(codec="utf-8")


def text(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    return st.text(_chars, min_size=min_size, max_size=max_size)


def regex(pattern: str) -> st.SearchStrategy[str]:
    return st.from_regex(pattern, fullmatch=True)


# Whole-minute offsets only: RFC 3339 cannot carry seconds in an offset.
aware_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.one_of(
        st.just(UTC),
        st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    ),
)

links = regex(r"https://[a-z]{1,12}\.example/[a-z0-9_./-]{0,30}")

parameters: st.SearchStrategy[Parameter] = st.one_of(
    st.builds(TextParameter, text=text(1, 40)),
    st.builds(ImageParameter, image=st.builds(MediaLink, link=links)),
    st.builds(VideoParameter, video=st.builds(MediaLink, link=links)),
    st.builds(
        DocumentParameter,
        document=st.builds(DocumentLink, link=links, filename=st.none() | text(1, 30)),
    ),
    st.builds(PayloadParameter, payload=text(1, 40)),
)

components = st.one_of(
    st.builds(
        Component,
        type=st.sampled_from(["header", "body", "footer"]),
        parameters=st.lists(parameters, max_size=3),
    ),
    st.builds(
        Component,
        type=st.just("button"),
        parameters=st.lists(parameters, max_size=2),
        sub_type=regex(r"[a-z_]{1,12}"),
        index=regex(r"[0-9]{1,2}"),
    ),
)

templates = st.builds(
    Template,
    name=regex(r"[a-z0-9_]{1,40}"),
    language=regex(r"[a-z]{2,3}(_[A-Z]{2})?"),
    components=st.lists(components, max_size=4),
)

senders = st.one_of(
    st.builds(Sender, phone_number_id=regex(r"[0-9]{6,20}")),
    st.just(Sender(auto=True)),
)

recipients = st.builds(
    Recipient,
    # any string goes on the wire: E.164 is the consumer's check, not the schema's
    phone=st.one_of(regex(r"\+[1-9][0-9]{6,14}"), text(1, 32)),
    opted_in_at=st.none() | aware_datetimes,
    variables=st.dictionaries(text(1, 12), text(0, 30), max_size=4),
)

chunks = st.integers(1, 100_000).flatmap(
    lambda count: st.builds(Chunk, index=st.integers(0, count - 1), count=st.just(count))
)

broadcast_requests = st.builds(
    BroadcastRequested,
    campaign_id=st.uuids(),
    sender=senders,
    template=templates,
    recipients=st.lists(recipients, min_size=1, max_size=5),
    chunk=chunks,
    send_at=st.none() | aware_datetimes,
)

_optional_text = st.none() | text(0, 40)
control_events = st.one_of(
    *(
        st.builds(cls, campaign_id=st.uuids(), reason=_optional_text, requested_by=_optional_text)
        for cls in (BroadcastPaused, BroadcastResumed, BroadcastCancelled)
    )
)

request_events: st.SearchStrategy[RequestEvent] = st.one_of(broadcast_requests, control_events)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text(), children, max_size=4),
    max_leaves=20,
)
