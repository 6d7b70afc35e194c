"""console.access: credentials, bearer tokens, signed sessions, CSRF tokens, the secret, masking.

The whole module is pure, so every rule is a table or a property here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from console.access import (
    MIN_TOKEN_CHARS,
    AccessConfigError,
    Credentials,
    Role,
    Session,
    User,
    bearer_token,
    csrf_token,
    csrf_valid,
    decode_secret,
    issue_session,
    mask_number,
    read_session,
)

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
OPS = "ops-token-0123456789"
ANA = "ana-token-0123456789"
BOB = "bob-token-0123456789"
NOW = 1_767_600_000.25
HOUR = 3600

ANA_VIEWER = User("ana", Role.VIEWER)
BOB_OPERATOR = User("bob", Role.OPERATOR)
NOTHING = "set CONSOLE_TOKEN or CONSOLE_USERS: the console needs one"
SHAPE = "expected name:role:token"
NAME_CHARS = "a name is letters, digits, '.', '-', '_'"
SHORT = f"a token needs at least {MIN_TOKEN_CHARS} chars"
TWICE = "the same token is given twice"

# RFC 6265 cookie-octet: printable US-ASCII but space, DQUOTE, comma, semicolon, backslash.
_COOKIE_OCTETS = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")

roles = st.sampled_from(list(Role))
tokens = st.text(
    string.ascii_letters + string.digits + "-_.~+/=:", min_size=MIN_TOKEN_CHARS, max_size=40
)


NAME_ALPHABET = string.ascii_letters + string.digits + ".-_"
# Any name `Credentials.parse` accepts: ASCII letters and digits, '.', '-', '_'.
names = st.text(NAME_ALPHABET, min_size=1, max_size=24).filter(
    lambda name: any(char.isalnum() for char in name)
)


def _sign(secret: bytes, payload: str) -> str:
    """The signature as the module docstring states it: HMAC-SHA256, base64url, no padding."""
    digest = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _session(user: User = ANA_VIEWER, now: float = NOW, lifetime: int = HOUR) -> Session:
    session = read_session(SECRET, issue_session(SECRET, user, now, lifetime), now)
    assert session is not None
    return session


# --- Credentials.parse ---------------------------------------------------------------


def test_console_token_alone_is_the_operator() -> None:
    credentials = Credentials.parse(f"  {OPS}\n", "")
    assert credentials.by_token == {OPS: User("operator", Role.OPERATOR)}


def test_console_users_entries() -> None:
    credentials = Credentials.parse("", f" ana:viewer:{ANA} ,, bob:operator:{BOB},")
    assert credentials.by_token == {ANA: ANA_VIEWER, BOB: BOB_OPERATOR}


def test_both_sources_together() -> None:
    credentials = Credentials.parse(OPS, f"ana:viewer:{ANA},bob:operator:{BOB}")
    assert credentials.by_token == {
        OPS: User("operator", Role.OPERATOR),
        ANA: ANA_VIEWER,
        BOB: BOB_OPERATOR,
    }


@pytest.mark.parametrize(
    ("entry", "user", "token"),
    [
        # A token may hold colons: only the first two separate the fields.
        (f"ana:viewer:{ANA}:more", ANA_VIEWER, f"{ANA}:more"),
        ("a.b-c_d:operator:" + "x" * MIN_TOKEN_CHARS, User("a.b-c_d", Role.OPERATOR), "x" * 16),
        (f"Ana9:viewer:{ANA}", User("Ana9", Role.VIEWER), ANA),
        # Every presented token is stripped (login form, bearer header), so is a stored one.
        (f"ana:viewer:  {ANA}", ANA_VIEWER, ANA),
    ],
)
def test_accepted_entries(entry: str, user: User, token: str) -> None:
    credentials = Credentials.parse("", entry)
    assert credentials.by_token == {token: user}
    assert credentials.user_of(token) == user


@pytest.mark.parametrize(
    ("single", "users", "message"),
    [
        ("x" * (MIN_TOKEN_CHARS - 1), "", f"CONSOLE_TOKEN: {SHORT}"),
        ("short", "", f"CONSOLE_TOKEN: {SHORT}"),
        ("", f"ana:viewer:{'x' * (MIN_TOKEN_CHARS - 1)}", f"CONSOLE_USERS entry 1: {SHORT}"),
        ("", f"ana:viewer:{ANA},bob:operator:short", f"CONSOLE_USERS entry 2: {SHORT}"),
        ("", f"ana:viewer:{ANA},bob:operator:{ANA}", f"CONSOLE_USERS entry 2: {TWICE}"),
        (ANA, f"ana:viewer:{ANA}", f"CONSOLE_USERS entry 1: {TWICE}"),
        (
            "",
            f"ana:viewer:{ANA},ana:operator:{BOB}",
            "CONSOLE_USERS entry 2: user 'ana' is listed twice",
        ),
        (OPS, f"operator:viewer:{ANA}", "CONSOLE_USERS entry 1: user 'operator' is listed twice"),
        (
            "",
            f"ana:admin:{ANA}",
            "CONSOLE_USERS entry 1: role 'admin' is not one of viewer, operator",
        ),
        (
            "",
            f"ana:Viewer:{ANA}",
            "CONSOLE_USERS entry 1: role 'Viewer' is not one of viewer, operator",
        ),
        ("", f"ana::{ANA}", "CONSOLE_USERS entry 1: role '' is not one of viewer, operator"),
        ("", "ana", f"CONSOLE_USERS entry 1: {SHAPE}"),
        ("", "ana:viewer", f"CONSOLE_USERS entry 1: {SHAPE}"),
        ("", "ana:viewer:", f"CONSOLE_USERS entry 1: {SHAPE}"),
        ("", f":viewer:{ANA}", f"CONSOLE_USERS entry 1: {SHAPE}"),
        ("", f"{ANA}", f"CONSOLE_USERS entry 1: {SHAPE}"),
        # Empty entries are skipped but still numbered, as a person counts commas.
        ("", f",,ana:viewer:{ANA},bob", f"CONSOLE_USERS entry 4: {SHAPE}"),
        ("", f"a b:viewer:{ANA}", f"CONSOLE_USERS entry 1: {NAME_CHARS}"),
        ("", f"ana|x:viewer:{ANA}", f"CONSOLE_USERS entry 1: {NAME_CHARS}"),
        ("", f"ana@x:viewer:{ANA}", f"CONSOLE_USERS entry 1: {NAME_CHARS}"),
        ("", f"ana/x:viewer:{ANA}", f"CONSOLE_USERS entry 1: {NAME_CHARS}"),
        ("", f"...:viewer:{ANA}", f"CONSOLE_USERS entry 1: {NAME_CHARS}"),
        ("", f"ana :viewer:{ANA}", f"CONSOLE_USERS entry 1: {NAME_CHARS}"),
        # A name goes into the session cookie, which is US-ASCII (RFC 6265).
        ("", f"张伟:viewer:{ANA}", f"CONSOLE_USERS entry 1: {NAME_CHARS}"),
        ("", f"andré:viewer:{ANA}", f"CONSOLE_USERS entry 1: {NAME_CHARS}"),
        ("", "", NOTHING),
        ("   ", " , ,", NOTHING),
    ],
)
def test_refusals(single: str, users: str, message: str) -> None:
    with pytest.raises(AccessConfigError) as refused:
        Credentials.parse(single, users)
    assert str(refused.value) == message


def test_shortest_token_is_accepted() -> None:
    token = "x" * MIN_TOKEN_CHARS
    assert Credentials.parse(token, "").user_of(token) == User("operator", Role.OPERATOR)


def test_repr_shows_no_token() -> None:
    credentials = Credentials.parse(OPS, f"ana:viewer:{ANA}")
    assert OPS not in repr(credentials)
    assert ANA not in repr(credentials)


@given(
    st.text(min_size=1, max_size=24).filter(
        lambda name: (
            name == name.strip()
            and not set(":,") & set(name)
            and not set(name) <= set(NAME_ALPHABET)
        )
    )
)
def test_parse_refuses_every_other_name(name: str) -> None:
    with pytest.raises(AccessConfigError) as refused:
        Credentials.parse("", f"{name}:viewer:{ANA}")
    assert str(refused.value) == f"CONSOLE_USERS entry 1: {NAME_CHARS}"


@settings(deadline=None)
@given(st.lists(st.tuples(names, roles, tokens), max_size=6))
def test_parse_keeps_every_distinct_entry(entries: list[tuple[str, Role, str]]) -> None:
    assume(len({name for name, _, _ in entries}) == len(entries))
    assume(len({token for _, _, token in entries}) == len(entries))
    users = ",".join(f"{name}:{role.value}:{token}" for name, role, token in entries)
    if not entries:
        with pytest.raises(AccessConfigError):
            Credentials.parse("", users)
        return
    credentials = Credentials.parse("", users)
    assert credentials.by_token == {token: User(name, role) for name, role, token in entries}


# --- user_of -------------------------------------------------------------------------

CREDENTIALS = Credentials.parse(OPS, f"ana:viewer:{ANA},bob:operator:{BOB}")


@pytest.mark.parametrize(
    ("presented", "user"),
    [
        (OPS, User("operator", Role.OPERATOR)),
        (ANA, ANA_VIEWER),
        (BOB, BOB_OPERATOR),
        ("", None),
        ("wrong-token-0123456789", None),
        (ANA[:-1], None),
        (ANA[: MIN_TOKEN_CHARS - 1], None),
        (ANA + "0", None),
        (ANA.upper(), None),
        (f" {ANA}", None),
        (ANA + BOB, None),
        ("ана-token-0123456789", None),
    ],
)
def test_user_of(presented: str, user: User | None) -> None:
    assert CREDENTIALS.user_of(presented) == user


@given(st.text(max_size=40))
def test_user_of_knows_only_known_tokens(presented: str) -> None:
    expected = CREDENTIALS.by_token.get(presented)
    assert CREDENTIALS.user_of(presented) == expected


# --- bearer_token --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {ANA}", ANA),
        (f"bearer {ANA}", ANA),
        (f"BEARER {ANA}", ANA),
        (f"bEaReR {ANA}", ANA),
        (f"  Bearer    {ANA}  ", ANA),
        (f"Bearer {ANA}\r\n", ANA),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer     ", None),
        ("bearer\t", None),
        # Only a space separates the scheme (RFC 9110 credentials: 1*SP).
        (f"Bearer\t{ANA}", None),
        (f"Bearer{ANA}", None),
        (f"Basic {ANA}", None),
        (f"Token {ANA}", None),
        (f"Bearer: {ANA}", None),
        (ANA, None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@given(tokens)
def test_bearer_token_round_trip(token: str) -> None:
    assert bearer_token(f"Bearer {token}") == token


# --- sessions ------------------------------------------------------------------------


@settings(deadline=None)
@given(
    name=names,
    role=roles,
    now=st.floats(0, 4e9, allow_nan=False),
    lifetime=st.integers(1, 10**9),
)
def test_session_round_trip(name: str, role: Role, now: float, lifetime: int) -> None:
    user = User(name, role)
    cookie = issue_session(SECRET, user, now, lifetime)
    session = read_session(SECRET, cookie, now)
    assert session is not None
    assert session.user == user
    assert session.expires_at == int(now) + lifetime
    assert cookie == f"{name}|{role.value}|{int(now) + lifetime}|{session.signature}"
    assert _COOKIE_OCTETS.fullmatch(cookie), cookie
    assert read_session(SECRET, cookie, session.expires_at - 0.001) == session
    assert read_session(SECRET, cookie, session.expires_at) is None


def test_the_signature_is_hmac_sha256_of_the_payload() -> None:
    cookie = issue_session(SECRET, ANA_VIEWER, 1000, 60)
    assert cookie == "ana|viewer|1060|" + _sign(SECRET, "ana|viewer|1060")


@pytest.mark.parametrize(
    ("at", "valid"),
    [
        (NOW - 10 * HOUR, True),  # a clock behind is no reason to refuse
        (NOW, True),
        (int(NOW) + HOUR - 0.5, True),
        (int(NOW) + HOUR, False),  # expired exactly at the expiry
        (int(NOW) + HOUR + 0.001, False),
        (NOW + 2 * HOUR, False),
    ],
)
def test_expiry(at: float, valid: bool) -> None:
    cookie = issue_session(SECRET, ANA_VIEWER, NOW, HOUR)
    assert (read_session(SECRET, cookie, at) is not None) is valid


def test_a_zero_lifetime_is_expired_at_once() -> None:
    assert read_session(SECRET, issue_session(SECRET, ANA_VIEWER, 1000, 0), 1000) is None


def _tampered() -> list[tuple[str, str]]:
    cookie = issue_session(SECRET, ANA_VIEWER, NOW, HOUR)
    name, role, expiry, signature = cookie.split("|")
    other = issue_session(SECRET, BOB_OPERATOR, NOW, HOUR).split("|")[3]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return [
        ("name changed", f"bob|{role}|{expiry}|{signature}"),
        ("name extended", f"ana2|{role}|{expiry}|{signature}"),
        ("viewer made operator", f"{name}|operator|{expiry}|{signature}"),
        ("role case", f"{name}|Viewer|{expiry}|{signature}"),
        ("expiry extended", f"{name}|{role}|{int(expiry) + 1}|{signature}"),
        ("expiry padded", f"{name}|{role}|0{expiry}|{signature}"),
        ("expiry signed", f"{name}|{role}|+{expiry}|{signature}"),
        ("signature flipped", f"{name}|{role}|{expiry}|{flipped}"),
        ("signature truncated", f"{name}|{role}|{expiry}|{signature[:-1]}"),
        ("signature padded", f"{name}|{role}|{expiry}|{signature}="),
        ("signature empty", f"{name}|{role}|{expiry}|"),
        ("signature of another", f"{name}|{role}|{expiry}|{other}"),
        ("signature missing", f"{name}|{role}|{expiry}"),
        ("cookie truncated", cookie[:-1]),
        ("cookie halved", cookie[: len(cookie) // 2]),
        ("separator appended", cookie + "|"),
        ("separator prepended", "|" + cookie),
        ("field appended", f"{cookie}|operator"),
        ("separator doubled", f"{name}||{role}|{expiry}|{signature}"),
        ("other secret", issue_session(OTHER_SECRET, ANA_VIEWER, NOW, HOUR)),
        ("spaces", f"{name} | {role} | {expiry} | {signature}"),
        ("garbage", "not a cookie"),
        ("empty", ""),
    ]


@pytest.mark.parametrize(("what", "cookie"), _tampered(), ids=[what for what, _ in _tampered()])
def test_tampering_is_refused(what: str, cookie: str) -> None:
    assert read_session(SECRET, cookie, NOW) is None, what


def test_no_cookie() -> None:
    assert read_session(SECRET, None, NOW) is None


@pytest.mark.parametrize(
    ("role_text", "expiry_text"),
    [("admin", "9999999999"), ("", "9999999999"), ("viewer", "soon"), ("viewer", "")],
)
def test_a_well_signed_but_meaningless_cookie_is_refused(role_text: str, expiry_text: str) -> None:
    payload = f"ana|{role_text}|{expiry_text}"
    assert read_session(SECRET, f"{payload}|{_sign(SECRET, payload)}", NOW) is None


@given(st.data())
def test_any_one_character_change_is_refused(data: st.DataObject) -> None:
    cookie = issue_session(SECRET, ANA_VIEWER, NOW, HOUR)
    at = data.draw(st.integers(0, len(cookie) - 1))
    replacement = data.draw(st.characters(codec="utf-8").filter(lambda c: c != cookie[at]))
    assert read_session(SECRET, cookie[:at] + replacement + cookie[at + 1 :], NOW) is None


# --- CSRF ----------------------------------------------------------------------------


def test_csrf_token_of_the_session_is_valid() -> None:
    session = _session()
    token = csrf_token(SECRET, session)
    assert csrf_valid(SECRET, session, token)
    assert token == _sign(SECRET, f"csrf|{session.signature}")
    assert token != session.signature


@pytest.mark.parametrize(
    "other",
    [
        _session(now=NOW + 1),  # the same user, another sign-in
        _session(user=BOB_OPERATOR),
        _session(user=User("ana", Role.OPERATOR)),
        _session(lifetime=2 * HOUR),
    ],
)
def test_csrf_token_of_another_session_is_refused(other: Session) -> None:
    assert not csrf_valid(SECRET, _session(), csrf_token(SECRET, other))
    assert not csrf_valid(SECRET, other, csrf_token(SECRET, _session()))


def test_csrf_token_under_another_secret_is_refused() -> None:
    session = _session()
    assert not csrf_valid(SECRET, session, csrf_token(OTHER_SECRET, session))


@pytest.mark.parametrize("presented", [None, "", " "])
def test_missing_csrf_token_is_refused(presented: str | None) -> None:
    assert not csrf_valid(SECRET, _session(), presented)


def test_csrf_token_one_character_off_is_refused() -> None:
    session = _session()
    token = csrf_token(SECRET, session)
    for at, char in enumerate(token):
        for replacement in {"A", "a", "-", "_", "é"} - {char}:
            assert not csrf_valid(SECRET, session, token[:at] + replacement + token[at + 1 :])
    for variant in (token[:-1], token[1:], token + "A", token + "=", " " + token, token.upper()):
        assert not csrf_valid(SECRET, session, variant)


# --- decode_secret -------------------------------------------------------------------

RAW = bytes(range(200, 232)) + bytes([0xFB, 0xFF, 0xBF])  # base64 of it has '-' and '_'
SECRET_REFUSED = "CONSOLE_SECRET must be at least 32 bytes, hex or base64"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        (RAW.hex(), RAW),
        (RAW.hex().upper(), RAW),
        (f"  {RAW[:32].hex()}\n", RAW[:32]),
        (bytes(64).hex(), bytes(64)),
        (_b64(RAW), RAW),
        (_b64(RAW).rstrip("="), RAW),
        (_b64(RAW[:32]), RAW[:32]),
        (_b64(RAW[:32]).rstrip("="), RAW[:32]),
        (_b64(RAW[:33]), RAW[:33]),  # no padding at all
        (f" {_b64(RAW)} ", RAW),
    ],
)
def test_decode_secret(text: str, raw: bytes) -> None:
    assert "-" in _b64(RAW)
    assert "_" in _b64(RAW)
    assert decode_secret(text) == raw


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        RAW[:16].hex(),  # 16 bytes as hex, 24 read as base64: short either way
        _b64(RAW[:31]),
        _b64(RAW[:31]).rstrip("="),
        "not-32-bytes",
        # Neither hex nor base64 (characters outside both alphabets), however long:
        "this is a passphrase, not a secret: it has spaces and punctuation!",
        "!" * 64,
        "é" * 64,
        "g" * 65,  # 4n + 1 chars: no base64 has that length
        _b64(RAW[:33]) + "A",
        "%" + _b64(RAW),
        _b64(RAW[:15]) + "..." + _b64(RAW[15:]),
        RAW.hex()[:-1],
    ],
)
def test_decode_secret_refuses(text: str) -> None:
    with pytest.raises(AccessConfigError) as refused:
        decode_secret(text)
    assert str(refused.value) == SECRET_REFUSED


def _hex_text(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


@given(st.binary(min_size=32, max_size=96))
def test_decode_secret_reads_back_what_it_was_given(raw: bytes) -> None:
    assert decode_secret(raw.hex()) == raw
    for text in (_b64(raw), _b64(raw).rstrip("=")):
        # Text that is hex of 32+ bytes is read as hex (it is tried first).
        assume(not (_hex_text(text) and len(text) >= 64))
        assert decode_secret(text) == raw


@given(st.binary(max_size=31))
def test_decode_secret_refuses_short_hex(raw: bytes) -> None:
    text = raw.hex()
    assume(len(text) * 3 // 4 < 32)  # not also base64 of 32+ bytes
    with pytest.raises(AccessConfigError):
        decode_secret(text)


# --- mask_number ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("", ""),
        ("1", "*"),
        ("+62", "***"),
        ("123456", "******"),
        ("1234567", "*******"),
        # Six leading and three trailing would show all of these: nothing is shown.
        ("+6834002", "********"),
        ("+68340021", "*********"),
        ("+628123456", "+62812*456"),
        ("6281234567", "628123*567"),
        ("+6281234567890", "+62812*****890"),
        ("+628123456789012", "+62812*******012"),
    ],
)
def test_mask_number(phone: str, masked: str) -> None:
    assert mask_number(phone) == masked


@given(st.builds(str.__add__, st.sampled_from(["", "+"]), st.text(string.digits, max_size=20)))
def test_mask_number_reveals_at_most_six_leading_and_three_trailing(phone: str) -> None:
    masked = mask_number(phone)
    assert len(masked) == len(phone)
    shown = [at for at, char in enumerate(masked) if char != "*"]
    assert all(masked[at] == phone[at] for at in shown)
    assert all(at < 6 or at >= len(phone) - 3 for at in shown)
    if phone:
        assert "*" in masked  # never the whole number
    if len(phone) <= 7:
        assert shown == []


# --- roles ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "may_act", "sees_numbers"),
    [(Role.VIEWER, False, False), (Role.OPERATOR, True, True)],
)
def test_roles(role: Role, may_act: bool, sees_numbers: bool) -> None:
    assert role.may_act is may_act
    assert role.sees_numbers is sees_numbers


def test_roles_are_exactly_viewer_and_operator() -> None:
    assert [role.value for role in Role] == ["viewer", "operator"]
