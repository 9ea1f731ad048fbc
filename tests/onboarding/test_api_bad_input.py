"""Bad input on every field and body of every mutating endpoint: a 4xx, never a 5xx, and no trace.

Each rejected request must leave the database exactly as it was: no outbox row, no user, no
session, no change to any onboarding data.
"""

import json
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client

from onboarding.models import Channel, ManualPrompt, User
from tests.conftest import bearer_client, outbox_rows, session_client
from tests.factories import PASSWORD, make_complete_user, profile_of, tokens_for


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    authenticated: bool
    success: int


ENDPOINTS = {
    "register": Endpoint("post", "/api/v1/auth/register", False, 201),
    "token": Endpoint("post", "/api/v1/auth/token", False, 200),
    "refresh": Endpoint("post", "/api/v1/auth/token/refresh", False, 200),
    "login": Endpoint("post", "/api/v1/auth/login", False, 200),
    "password": Endpoint("post", "/api/v1/auth/password", True, 200),
    "profile": Endpoint("patch", "/api/v1/accounts/me", True, 200),
    "prompt": Endpoint("put", "/api/v1/ai-prompts/manual", True, 200),
    "channel": Endpoint("post", "/api/v1/channels", True, 201),
}


def valid_body(endpoint: str, user: User) -> dict:
    """A body the endpoint accepts for `user`, which every case below spoils in one place."""
    return {
        "register": lambda: {
            "username": "newcomer",
            "password": "a long pass phrase 7",
            "email": "new@example.com",
        },
        "token": lambda: {"username": user.username, "password": PASSWORD},
        "refresh": lambda: {"refresh": tokens_for(user).refresh},
        "login": lambda: {"username": user.username, "password": PASSWORD},
        "password": lambda: {
            "current_password": PASSWORD,
            "new_password": "a brand new pass phrase 9",
        },
        "profile": lambda: {
            "first_name": "Grace",
            "last_name": "Hopper",
            "phone_number": "+44 20 7946 0958",
            "business_type": "travel",
        },
        "prompt": lambda: {"content": "Answer in French."},
        "channel": lambda: {"platform": "telegram", "external_id": "tg-new", "name": "New"},
    }[endpoint]()


def send_raw(endpoint: str, data, *, user: User | None = None, content_type="application/json"):
    spec = ENDPOINTS[endpoint]
    client = bearer_client(user) if spec.authenticated else Client()
    return getattr(client, spec.method)(spec.path, data, content_type=content_type)


def database_state() -> dict:
    """Everything a request of these endpoints could write."""
    return {
        "users": list(User.objects.order_by("pk").values()),
        "prompts": list(ManualPrompt.objects.order_by("pk").values()),
        "channels": list(Channel.objects.order_by("pk").values()),
        "sessions": list(Session.objects.values_list("session_key", flat=True)),
        "outbox": outbox_rows(),
    }


def assert_rejected_without_a_trace(response, status: int, body, before: dict) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == body
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    after = database_state()
    assert after["outbox"] == []
    assert after == before


@pytest.fixture
def owner(db) -> User:
    """A user with a full profile, a prompt and a channel: everything a write could damage."""
    return make_complete_user()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_valid_body_of_each_endpoint_is_accepted(owner, endpoint):
    response = send_raw(endpoint, valid_body(endpoint, owner), user=owner)

    assert response.status_code == ENDPOINTS[endpoint].success, response.content


# --- one bad field at a time --------------------------------------------------------------


@dataclass(frozen=True)
class StringField:
    endpoint: str
    name: str
    max_length: int
    multiline: bool = False  # the prompt: newlines and tabs allowed, checked by the service
    only_nul_forbidden: bool = False  # passwords: any character but NUL
    nullable: bool = False


STRING_FIELDS = [
    StringField("register", "username", 150),
    StringField("register", "password", 4096, only_nul_forbidden=True),
    StringField("register", "email", 254),
    StringField("token", "username", 150),
    StringField("token", "password", 4096, only_nul_forbidden=True),
    StringField("refresh", "refresh", 4096),
    StringField("login", "username", 150),
    StringField("login", "password", 4096, only_nul_forbidden=True),
    StringField("password", "current_password", 4096, only_nul_forbidden=True),
    StringField("password", "new_password", 4096, only_nul_forbidden=True),
    StringField("profile", "first_name", 150, nullable=True),
    StringField("profile", "last_name", 150, nullable=True),
    StringField("profile", "phone_number", 64, nullable=True),
    StringField("prompt", "content", 10_000, multiline=True, only_nul_forbidden=True),
    StringField("channel", "external_id", 255),
    StringField("channel", "name", 255, nullable=True),
]

WRONG_TYPES = [
    ("integer", 42),
    ("float", 4.2),
    ("list", ["text"]),
    ("object", {"text": "text"}),
    ("bool", True),
]
CONTROL_CHARACTERS = [("soh", "\x01"), ("escape", "\x1b"), ("delete", "\x7f"), ("c1", "\x85")]
LINE_BREAKS = [("newline", "\n"), ("tab", "\t")]


@dataclass(frozen=True)
class Case:
    id: str
    endpoint: str
    body_change: dict
    status: int
    answer: object


def loc(field: str) -> list[str]:
    return ["body", "payload", field]


def pydantic_value_error(field: str, message: str) -> dict:
    """An error raised by one of our Pydantic validators."""
    return {
        "detail": [
            {
                "type": "value_error",
                "loc": loc(field),
                "msg": f"Value error, {message}",
                "ctx": {"error": message},
            }
        ]
    }


def service_error(field: str, message: str) -> dict:
    """An InvalidInput from a service, in the same Ninja shape."""
    return {"detail": [{"type": "value_error", "loc": loc(field), "msg": message}]}


def string_field_cases(spec: StringField):
    field = spec.name
    prefix = f"{spec.endpoint}.{field}"

    def case(label, value, status, answer):
        return Case(f"{prefix}-{label}", spec.endpoint, {field: value}, status, answer)

    not_a_string = {
        "detail": [
            {"type": "string_type", "loc": loc(field), "msg": "Input should be a valid string"}
        ]
    }
    for label, value in WRONG_TYPES:
        yield case(label, value, 422, not_a_string)
    if not spec.nullable:
        yield case("null", None, 422, not_a_string)

    control = (
        "Control characters are not allowed."
        if not spec.only_nul_forbidden
        else "NUL characters are not allowed."
    )
    yield case("nul", "ab\x00cd", 422, pydantic_value_error(field, control))
    yield case("only-nul", "\x00", 422, pydantic_value_error(field, control))
    if not spec.only_nul_forbidden:
        for label, char in CONTROL_CHARACTERS + LINE_BREAKS:
            yield case(label, f"ab{char}cd", 422, pydantic_value_error(field, control))
    if spec.multiline:
        message = "Control characters other than newlines and tabs are not allowed."
        for label, char in CONTROL_CHARACTERS:
            yield case(label, f"ab{char}cd", 422, service_error(field, message))

    yield case(
        "surrogate",
        "ab\ud800cd",
        422,
        pydantic_value_error(field, "Unpaired surrogate characters are not allowed."),
    )
    too_long = spec.max_length + 1
    yield case(
        "too-long",
        "x" * too_long,
        422,
        {
            "detail": [
                {
                    "type": "too_long",
                    "loc": loc(field),
                    "msg": (
                        f"Value should have at most {spec.max_length} items after validation, "
                        f"not {too_long}"
                    ),
                    "ctx": {
                        "field_type": "Value",
                        "max_length": spec.max_length,
                        "actual_length": too_long,
                    },
                }
            ]
        },
    )


def too_short(field: str) -> dict:
    return {
        "detail": [
            {
                "type": "too_short",
                "loc": loc(field),
                "msg": "Value should have at least 1 item after validation, not 0",
                "ctx": {"field_type": "Value", "min_length": 1, "actual_length": 0},
            }
        ]
    }


INVALID_USERNAME = (
    "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ "
    "characters."
)
INVALID_CREDENTIALS = {"detail": "Invalid username or password."}
INVALID_REFRESH = {"detail": "Invalid or expired refresh token."}


def field_specific_cases():
    """Empty, blank and field-specific values, where each field has its own rule."""
    blank = service_error
    yield Case("register.username-empty", "register", {"username": ""}, 422, too_short("username"))
    yield Case(
        "register.username-blank",
        "register",
        {"username": "   "},
        422,
        blank("username", "This field may not be blank."),
    )
    for label, value in [
        ("space", "bob smith"),
        ("emoji", "bob\U0001f600"),
        ("sql", "'; DROP TABLE users; --"),
        ("html", "<b>bob</b>"),
        ("rtl-mark", "\u200fbob"),
        ("slash", "bob/../admin"),
    ]:
        yield Case(
            f"register.username-{label}",
            "register",
            {"username": value},
            422,
            blank("username", INVALID_USERNAME),
        )
    yield Case("register.password-empty", "register", {"password": ""}, 422, too_short("password"))
    yield Case(
        "password.new_password-empty",
        "password",
        {"new_password": ""},
        422,
        too_short("new_password"),
    )
    yield Case(
        "password.current_password-wrong",
        "password",
        {"current_password": "not the password"},
        400,
        {"code": "wrong_password", "detail": "The current password is not correct."},
    )
    yield Case(
        "password.new_password-common",
        "password",
        {"new_password": "Dragon2024"},
        422,
        service_error(
            "new_password", "This password is a common password with digits or symbols added."
        ),
    )
    yield Case(
        "register.password-blank",
        "register",
        {"password": "   "},
        422,
        blank(
            "password",
            "This password is too short. It must contain at least 8 characters. "
            "This password consists of whitespace only.",
        ),
    )
    for label, value in [
        ("no-at", "not-an-email"),
        ("no-domain", "a@"),
        ("sql", "'; DROP TABLE users; --"),
        ("two-ats", "a@@example.com"),
    ]:
        yield Case(
            f"register.email-{label}",
            "register",
            {"email": value},
            422,
            blank("email", "Enter a valid email address."),
        )
    for endpoint in ("token", "login"):
        for field, label, value in [
            ("username", "empty", ""),
            ("username", "blank", "   "),
            ("username", "sql-drop", "'; DROP TABLE users; --"),
            ("username", "sql-or", "' OR '1'='1"),
            ("password", "empty", ""),
            ("password", "blank", "   "),
            ("password", "sql-or", "' OR '1'='1"),
        ]:
            yield Case(
                f"{endpoint}.{field}-{label}", endpoint, {field: value}, 401, INVALID_CREDENTIALS
            )
    for label, value in [("empty", ""), ("blank", "   "), ("sql", "'; DROP TABLE users; --")]:
        yield Case(f"refresh.refresh-{label}", "refresh", {"refresh": value}, 401, INVALID_REFRESH)
    yield Case(
        "channel.external_id-empty", "channel", {"external_id": ""}, 422, too_short("external_id")
    )
    yield Case(
        "channel.external_id-blank",
        "channel",
        {"external_id": "  \u3000 "},
        422,
        blank("external_id", "This field may not be blank."),
    )
    phone = "Enter a valid phone number in international format, e.g. +14155552671."
    for label, value in [("letters", "call me"), ("sql", "'; DROP TABLE users; --")]:
        yield Case(
            f"profile.phone_number-{label}",
            "profile",
            {"phone_number": value},
            422,
            blank("phone_number", phone),
        )


def enum_cases():
    platform_error = {
        "detail": [
            {
                "type": "enum",
                "loc": loc("platform"),
                "msg": "Input should be 'instagram' or 'telegram'",
                "ctx": {"expected": "'instagram' or 'telegram'"},
            }
        ]
    }
    values = [
        *WRONG_TYPES,
        ("empty", ""),
        ("blank", "   "),
        ("nul", "\x00"),
        ("padded", " instagram "),
        ("sql", "'; DROP TABLE users; --"),
        ("unicode-lookalike", "\u0456nstagram"),
    ]
    for label, value in [*values, ("null", None)]:
        yield Case(f"channel.platform-{label}", "channel", {"platform": value}, 422, platform_error)

    expected = (
        "'ecommerce', 'retail', 'restaurant', 'beauty', 'healthcare', 'education', "
        "'real_estate', 'travel', 'fitness', 'professional_services' or 'other'"
    )
    business_type_error = {
        "detail": [
            {
                "type": "enum",
                "loc": [*loc("business_type"), "str-enum[BusinessType]"],
                "msg": f"Input should be {expected}",
                "ctx": {"expected": expected},
            },
            {
                "type": "literal_error",
                "loc": [*loc("business_type"), "literal['']"],
                "msg": "Input should be ''",
                "ctx": {"expected": "''"},
            },
        ]
    }
    for label, value in [item for item in values if item[0] != "empty"]:
        yield Case(
            f"profile.business_type-{label}",
            "profile",
            {"business_type": value},
            422,
            business_type_error,
        )

    not_unicode = "Input should be a valid string, unable to parse raw data as a unicode string"
    yield Case(
        "channel.platform-surrogate",
        "channel",
        {"platform": "\ud800"},
        422,
        {"detail": [{"type": "string_unicode", "loc": loc("platform"), "msg": not_unicode}]},
    )
    yield Case(
        "profile.business_type-surrogate",
        "profile",
        {"business_type": "\ud800"},
        422,
        {
            "detail": [
                {
                    "type": "string_unicode",
                    "loc": [*loc("business_type"), branch],
                    "msg": not_unicode,
                }
                for branch in ("str-enum[BusinessType]", "literal['']")
            ]
        },
    )


def unknown_key_cases():
    for endpoint in ENDPOINTS:
        for key in ("unknown", "is_staff"):
            yield Case(
                f"{endpoint}-extra-{key}",
                endpoint,
                {key: "x"},
                422,
                {
                    "detail": [
                        {
                            "type": "extra_forbidden",
                            "loc": loc(key),
                            "msg": "Extra inputs are not permitted",
                        }
                    ]
                },
            )


CASES = [
    *(case for spec in STRING_FIELDS for case in string_field_cases(spec)),
    *field_specific_cases(),
    *enum_cases(),
    *unknown_key_cases(),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_field_is_rejected_without_a_trace(owner, case):
    body = valid_body(case.endpoint, owner) | case.body_change
    before = database_state()

    response = send_raw(case.endpoint, body, user=owner)

    assert_rejected_without_a_trace(response, case.status, case.answer, before)


@pytest.mark.parametrize(
    ("endpoint", "required"),
    [
        ("register", "username"),
        ("register", "password"),
        ("token", "username"),
        ("token", "password"),
        ("refresh", "refresh"),
        ("login", "username"),
        ("login", "password"),
        ("password", "current_password"),
        ("password", "new_password"),
        ("prompt", "content"),
        ("channel", "platform"),
        ("channel", "external_id"),
    ],
)
def test_a_missing_required_field_is_422(owner, endpoint, required):
    body = valid_body(endpoint, owner)
    del body[required]
    before = database_state()

    response = send_raw(endpoint, body, user=owner)

    assert_rejected_without_a_trace(
        response,
        422,
        {"detail": [{"type": "missing", "loc": loc(required), "msg": "Field required"}]},
        before,
    )


# --- whole bodies that are not a JSON object ----------------------------------------------

CANNOT_PARSE = {"detail": "Cannot parse request body"}
NOT_AN_OBJECT = {
    "detail": [
        {
            "type": "model_attributes_type",
            "loc": ["body", "payload"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
        }
    ]
}
TOO_LARGE = {"detail": "Request body is too large."}
OVER_THE_LIMIT = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024


def _over_the_limit(body: dict) -> bytes:
    padded = dict(body, padding="x" * OVER_THE_LIMIT)
    return json.dumps(padded).encode()


MISSING_BODY = {
    "detail": [{"type": "missing", "loc": ["body", "payload"], "msg": "Field required"}]
}
SURROGATE_KEY = {
    "detail": [
        {
            "type": "string_unicode",
            "loc": ["body", "payload"],
            "msg": "Input should be a valid string, unable to parse raw data as a unicode string",
        }
    ]
}
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

BODIES = {
    # id: (build from the valid body, content type, status, answer)
    "truncated": (lambda body: json.dumps(body).encode()[:-3], JSON, 400, CANNOT_PARSE),
    "trailing-garbage": (lambda body: json.dumps(body).encode() + b" x", JSON, 400, CANNOT_PARSE),
    "not-utf8": (lambda body: b"\xff\xfe\xfd{", JSON, 400, CANNOT_PARSE),
    "nul-bytes": (lambda body: b"\x00" * 16, JSON, 400, CANNOT_PARSE),
    "deep-nesting": (lambda body: b"[" * 100_000 + b"]" * 100_000, JSON, 400, CANNOT_PARSE),
    "huge-integer": (lambda body: b'{"n": ' + b"9" * 5000 + b"}", JSON, 400, CANNOT_PARSE),
    "form-encoded": (lambda body: urlencode(body).encode(), FORM, 400, CANNOT_PARSE),
    "json-as-text-plain": (lambda body: json.dumps(body).encode(), "text/plain", 400, CANNOT_PARSE),
    "json-without-content-type": (lambda body: json.dumps(body).encode(), "", 400, CANNOT_PARSE),
    "array": (lambda body: b"[]", JSON, 422, NOT_AN_OBJECT),
    "array-of-the-body": (lambda body: json.dumps([body]).encode(), JSON, 422, NOT_AN_OBJECT),
    "string": (lambda body: json.dumps(json.dumps(body)).encode(), JSON, 422, NOT_AN_OBJECT),
    "number": (lambda body: b"42", JSON, 422, NOT_AN_OBJECT),
    "null": (lambda body: b"null", JSON, 422, NOT_AN_OBJECT),
    "surrogate-key": (lambda body: b'{"\\ud800": 1}', JSON, 422, SURROGATE_KEY),
    "empty": (lambda body: b"", JSON, 422, MISSING_BODY),
    "too-large": (_over_the_limit, JSON, 413, TOO_LARGE),
}


@pytest.mark.parametrize("shape", BODIES.values(), ids=BODIES.keys())
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_body_that_is_not_a_usable_json_object_is_rejected_without_a_trace(
    owner, endpoint, shape
):
    build, content_type, status, answer = shape
    data = build(valid_body(endpoint, owner))
    before = database_state()

    response = send_raw(endpoint, data, user=owner, content_type=content_type)

    assert_rejected_without_a_trace(response, status, answer, before)


@pytest.mark.parametrize("path", ["/api/v1/channels", "/api/v1/auth/logout"])
def test_a_huge_form_post_with_the_session_cookie_is_413_not_500(owner, path):
    # Without a CSRF header, the CSRF check of a POST reads the form body to look for the token.
    client = session_client(owner)
    before = database_state()

    response = client.post(
        path,
        urlencode({"padding": "x" * OVER_THE_LIMIT}),
        content_type="application/x-www-form-urlencoded",
    )

    assert_rejected_without_a_trace(response, 413, TOO_LARGE, before)


# --- the channel id in the path -----------------------------------------------------------


def _path_error(kind: str) -> dict:
    return {
        "int_parsing": {
            "type": "int_parsing",
            "loc": ["path", "channel_id"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
        },
        "ge": {
            "type": "greater_than_equal",
            "loc": ["path", "channel_id"],
            "msg": "Input should be greater than or equal to 1",
            "ctx": {"ge": 1},
        },
        "le": {
            "type": "less_than_equal",
            "loc": ["path", "channel_id"],
            "msg": "Input should be less than or equal to 9223372036854775807",
            "ctx": {"le": 9223372036854775807},
        },
    }[kind]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("abc", "int_parsing"),
        ("1.5", "int_parsing"),
        ("1e3", "int_parsing"),
        ("0x1", "int_parsing"),
        ("%00", "int_parsing"),
        ("%F0%9F%98%80", "int_parsing"),
        ("1%27%20OR%20%271%27%3D%271", "int_parsing"),
        ("0", "ge"),
        ("-1", "ge"),
        ("9223372036854775808", "le"),
        ("99999999999999999999999999999999", "le"),
    ],
)
def test_a_bad_channel_id_is_422_without_a_trace(owner, raw, error):
    before = database_state()

    response = bearer_client(owner).delete(f"/api/v1/channels/{raw}")

    assert_rejected_without_a_trace(response, 422, {"detail": [_path_error(error)]}, before)


# --- unusual but valid text is stored exactly, trimmed ------------------------------------

UNUSUAL_TEXT = [
    ("accents", "Zo\u00eb \u00d1\u00fa\u00f1ez-\u00c7elik"),
    ("emoji", "\U0001f469\u200d\U0001f4bb Ada \U0001f680"),
    ("hebrew", "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd"),
    ("arabic-with-rtl-mark", "\u200f\u0645\u0631\u062d\u0628\u0627 \u0628\u0643"),
    ("bidi-override", "\u202eevil\u202c"),
    ("cjk", "\u5c71\u7530 \u592a\u90ce"),
    ("astral", "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522"),
    ("combining", "e\u0301e\u0301"),
    ("zero-width", "a\u200bb\u200dc"),
    ("sql-drop", "'; DROP TABLE users; --"),
    ("sql-bobby", "Robert'); DROP TABLE onboarding_user;--"),
    ("sql-or", "1' OR '1'='1"),
    ("html", "<script>alert(1)</script>"),
    ("quotes-backslashes", 'a "quoted" \\ back\\slash'),
    ("format-strings", "100% _like_ %s {0} ${x}"),
]
TEXT_FIELDS = {
    "first_name": ("profile", "first_name"),
    "last_name": ("profile", "last_name"),
    "content": ("prompt", "content"),
    "external_id": ("channel", "external_id"),
    "channel-name": ("channel", "name"),
}


def stored(endpoint: str, field: str, user: User) -> str:
    if endpoint == "profile":
        return getattr(profile_of(user), field)
    if endpoint == "prompt":
        return ManualPrompt.objects.get(user=user).content
    return getattr(Channel.objects.get(user=user, disconnected_at__isnull=True), field)


@pytest.mark.parametrize(
    "text", [value for _, value in UNUSUAL_TEXT], ids=[label for label, _ in UNUSUAL_TEXT]
)
@pytest.mark.parametrize("target", TEXT_FIELDS.values(), ids=TEXT_FIELDS.keys())
def test_unusual_text_is_stored_exactly_and_trimmed(user, target, text):
    endpoint, field = target
    body = valid_body(endpoint, user) | {field: f" \u00a0 {text}  \u3000"}

    response = send_raw(endpoint, body, user=user)

    assert response.status_code == ENDPOINTS[endpoint].success, response.content
    assert response.json()[field] == text
    assert stored(endpoint, field, user) == text


@pytest.mark.parametrize(
    ("endpoint", "field", "limit"),
    [
        ("profile", "first_name", 150),
        ("profile", "last_name", 150),
        ("channel", "external_id", 255),
        ("channel", "name", 255),
    ],
)
def test_astral_characters_count_as_one_up_to_the_limit(user, endpoint, field, limit):
    text = "\U0001f600" * limit

    response = send_raw(endpoint, valid_body(endpoint, user) | {field: text}, user=user)

    assert response.status_code == ENDPOINTS[endpoint].success, response.content
    assert stored(endpoint, field, user) == text


@pytest.mark.parametrize(
    "username",
    ["Zo\u00eb", "\u5c71\u7530\u592a\u90ce", "\u0645\u0631\u062d\u0628\u0627", "a.b@c+d-e_f"],
)
def test_unicode_letters_are_valid_in_a_username(db, username):
    response = send_raw("register", {"username": username, "password": "a long phrase 8"})

    assert response.status_code == 201
    assert response.json()["username"] == username
    assert User.objects.get().username == username


def test_passwords_may_hold_any_character_but_nul(db):
    password = "\t\x01 p\u00e4ss \U0001f511 \u202e phrase \x7f"
    response = send_raw("register", {"username": "strange", "password": password})
    assert response.status_code == 201

    token = Client().post(
        "/api/v1/auth/token",
        {"username": "strange", "password": password},
        content_type="application/json",
    )

    assert token.status_code == 200


@pytest.mark.parametrize("email", ["", "   "])
def test_a_blank_email_is_no_email(db, email):
    response = send_raw(
        "register", {"username": "noemail", "password": "a long phrase 8", "email": email}
    )

    assert response.status_code == 201
    assert User.objects.get().email == ""
