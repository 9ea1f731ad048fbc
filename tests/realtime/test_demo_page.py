"""The demo page: its language, the CSRF cookie, who is signed in, and the markup hooks the
browser client's guide names (contract section 7). What the page does in a browser is the
business of its scripts; here, what the server sends."""

import re
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings

from onboarding.models import BusinessType, Platform
from onboarding.status import REQUIREMENTS
from tests.factories import make_user

pytestmark = pytest.mark.django_db

URL = "/demo/wizard-status/"
DEMO_STATIC = Path(settings.BASE_DIR) / "realtime" / "static" / "wizard-status-demo"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    parent: "Element | None"
    children: list["Element"] = field(default_factory=list)
    text: str = ""

    @property
    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()

    def walk(self):
        for child in self.children:
            yield child
            yield from child.walk()

    def select(self, *, cls: str | None = None, **attrs: str) -> list["Element"]:
        """Descendants with the class `cls` and the attributes given (`data_field` for
        `data-field`; `True` for "present with any value")."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [
            element
            for element in self.walk()
            if (cls is None or cls in element.classes)
            and all(
                name in element.attrs and (value is True or element.attrs[name] == value)
                for name, value in wanted.items()
            )
        ]

    def one(self, **query) -> "Element":
        found = self.select(**query)
        assert len(found) == 1, (query, found)
        return found[0]

    def inside(self, tag: str) -> bool:
        return self.parent is not None and (self.parent.tag == tag or self.parent.inside(tag))


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Element("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs), self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.current.tag == tag, f"</{tag}> closes <{self.current.tag}>"
        self.current = self.current.parent

    def handle_data(self, data):
        self.current.text += data


def parse(response) -> Element:
    builder = TreeBuilder()
    builder.feed(response.content.decode())
    builder.close()
    assert builder.current is builder.root, "unclosed elements"
    return builder.root


def html_tag(response) -> str:
    return re.search(r"<html[^>]*>", response.content.decode()).group(0)


def test_the_page_is_html_in_english_by_default(client):
    response = client.get(URL)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert html_tag(response) == '<html lang="en" dir="ltr">'
    assert response["Content-Language"] == "en"


@pytest.mark.parametrize(
    ("query", "html"),
    [
        ("?lang=en", '<html lang="en" dir="ltr">'),
        ("?lang=tr", '<html lang="tr" dir="ltr">'),
        ("?lang=ar", '<html lang="ar" dir="rtl">'),
        ("?lang=AR", '<html lang="ar" dir="rtl">'),
        ("?lang=tr-TR", '<html lang="tr" dir="ltr">'),
    ],
)
def test_lang_parameter_sets_the_language_and_direction(client, query, html):
    response = client.get(URL + query)

    assert response.status_code == 200
    assert html_tag(response) == html


@pytest.mark.parametrize(
    ("accept_language", "lang"),
    [
        ("tr-TR,tr;q=0.9", "tr"),
        ("ar-EG", "ar"),
        ("de-DE,de;q=0.9,ar;q=0.5,tr;q=0.4", "ar"),
        ("fr;q=1, tr;q=0.3, ar;q=0.8", "ar"),
        ("EN-gb", "en"),
        ("de-DE,fr;q=0.9", "en"),
        ("tr;q=0", "en"),
        ("*", "en"),
        ("", "en"),
        ("not a header;;;===", "en"),
    ],
)
def test_accept_language_picks_the_best_supported_language(client, accept_language, lang):
    response = client.get(URL, headers={"Accept-Language": accept_language})

    assert response.status_code == 200
    assert html_tag(response) == f'<html lang="{lang}" dir="{"rtl" if lang == "ar" else "ltr"}">'
    assert response["Content-Language"] == lang


def test_the_answer_varies_with_the_browser_languages_and_is_not_cached(client):
    response = client.get(URL)

    vary = {part.strip() for part in response["Vary"].split(",")}
    assert {"Accept-Language", "Cookie"} <= vary
    assert "no-store" in response["Cache-Control"]


def test_lang_parameter_wins_over_accept_language(client):
    response = client.get(URL + "?lang=ar", headers={"Accept-Language": "tr-TR,tr;q=0.9"})

    assert html_tag(response) == '<html lang="ar" dir="rtl">'


@pytest.mark.parametrize("value", ["xx", "", "english", "<script>", "a" * 5000, "tr\x00"])
def test_an_unsupported_lang_parameter_falls_back(client, value):
    plain = client.get(URL, {"lang": value})
    with_browser_language = client.get(URL, {"lang": value}, headers={"Accept-Language": "tr"})

    assert plain.status_code == 200
    assert html_tag(plain) == '<html lang="en" dir="ltr">'
    assert with_browser_language.status_code == 200
    assert html_tag(with_browser_language) == '<html lang="tr" dir="ltr">'
    assert "<script>" not in plain.content.decode().replace('<script type="module"', "")


def test_other_methods_are_refused(client):
    assert client.post(URL).status_code == 405
    assert client.head(URL).status_code == 200


def test_the_csrf_cookie_is_set_and_its_name_given_to_the_page(client):
    response = client.get(URL)

    cookie = response.cookies[settings.CSRF_COOKIE_NAME]
    assert re.fullmatch(r"[A-Za-z0-9]{32}", cookie.value)
    assert _body(response).attrs["data-csrf-cookie"] == "csrftoken"


def test_a_renamed_csrf_cookie_is_named_to_the_page(client, settings):
    settings.CSRF_COOKIE_NAME = "demo_csrf"

    response = client.get(URL)

    assert re.fullmatch(r"[A-Za-z0-9]{32}", response.cookies["demo_csrf"].value)
    assert _body(response).attrs["data-csrf-cookie"] == "demo_csrf"


def _body(response) -> Element:
    [body] = [element for element in parse(response).walk() if element.tag == "body"]
    return body


def test_the_page_loads_its_script_module_and_stylesheet(client):
    document = parse(client.get(URL))

    scripts = [element.attrs for element in document.walk() if element.tag == "script"]
    styles = [element.attrs for element in document.walk() if element.tag == "link"]
    assert scripts == [{"type": "module", "src": "/static/wizard-status-demo/demo.js"}]
    assert styles == [{"rel": "stylesheet", "href": "/static/wizard-status-demo/demo.css"}]


def test_the_checklist_has_one_item_per_requirement_in_canonical_order(client):
    document = parse(client.get(URL))

    items = document.select(data_field=True)
    assert [item.attrs["data-field"] for item in items] == list(REQUIREMENTS)
    for item in items:
        assert len(item.select(cls="icon")) == 1, item.attrs
        label = item.one(cls="label")
        assert label.attrs["data-label"] == item.attrs["data-field"]
        assert "completed" not in item.classes


def test_the_progress_connection_and_button_hooks_exist(client):
    document = parse(client.get(URL))

    fill = document.one(cls="progress-fill")
    assert fill.attrs["style"] == "width: 0%"
    assert document.one(cls="progress-text").tag == "strong"
    assert document.one(cls="connection-status").tag == "span"
    complete = document.one(cls="complete-wizard-btn")
    assert (complete.tag, complete.attrs["type"], "disabled" in complete.attrs) == (
        "button",
        "button",
        True,
    )
    assert document.one(cls="refresh-btn").tag == "button"


def test_each_requirement_has_its_form(client):
    document = parse(client.get(URL))

    forms = {form.attrs["data-form"]: form for form in document.select(data_form=True)}
    assert list(forms) == list(REQUIREMENTS)
    names = {
        step: [element.attrs.get("name") for element in form.walk() if "name" in element.attrs]
        for step, form in forms.items()
    }
    assert names == {
        "first_name": ["first_name"],
        "last_name": ["last_name"],
        "phone_number": ["phone_number"],
        "business_type": ["business_type"],
        "manual_prompt": ["content"],
        "channel_connected": ["platform", "external_id"],
    }
    platforms = [option.attrs["value"] for option in forms["channel_connected"].select(value=True)]
    assert platforms == ["instagram", "telegram"]
    chips = forms["channel_connected"].select(data_platform=True)
    assert [(chip.tag, chip.attrs["data-platform"]) for chip in chips] == [
        ("bdi", "instagram"),
        ("bdi", "telegram"),
    ]
    assert len(document.one(cls="sign-in-form").select(name="password")) == 1
    assert len(document.one(cls="register-form").select(name="email")) == 1


def test_the_language_switcher_names_each_language_in_itself(client):
    document = parse(client.get(URL + "?lang=ar"))

    links = document.one(cls="language-switcher").select(href=True)
    assert [(link.attrs["href"], link.attrs["lang"], link.text) for link in links] == [
        ("?lang=en", "en", "English"),
        ("?lang=tr", "tr", "Türkçe"),
        ("?lang=ar", "ar", "العربيّة"),
    ]
    assert [link.attrs.get("aria-current") for link in links] == [None, None, "page"]


def test_the_template_holds_no_prose_of_its_own(client):
    """Every text comes from the translation table at start-up: outside the no-script note
    and the language names, the page's elements are empty."""
    document = parse(client.get(URL))

    texts = [
        element.text.strip()
        for element in document.walk()
        if element.text.strip() and not element.inside("noscript") and not element.inside("nav")
    ]
    assert texts == []


def test_an_anonymous_visitor_is_not_signed_in(client):
    body = _body(client.get(URL))

    assert (body.attrs["data-signed-in"], body.attrs["data-username"]) == ("false", "")


def test_a_signed_in_user_is_named_to_the_page(client):
    user = make_user(username="ada_lovelace")
    client.force_login(user)

    body = _body(client.get(URL))

    assert (body.attrs["data-signed-in"], body.attrs["data-username"]) == ("true", "ada_lovelace")


def test_a_username_is_escaped(client):
    client.force_login(make_user(username='<b>"x"</b>'))

    response = client.get(URL)

    assert 'data-username="&lt;b&gt;&quot;x&quot;&lt;/b&gt;"' in response.content.decode()
    assert _body(response).attrs["data-username"] == '<b>"x"</b>'


def test_the_index_page_links_to_the_demo(client):
    response = client.get("/")

    assert response.status_code == 200
    assert f'href="{URL}"' in response.content.decode()


def _served(client, path: str):
    response = client.get(path)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


def test_the_scripts_and_every_module_they_import_are_served(client):
    """demo.js imports its siblings and the browser client by relative paths: each resolves
    to a file the service serves as JavaScript."""
    pending, seen = ["/static/wizard-status-demo/demo.js"], set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        response, body = _served(client, path)
        assert (response.status_code, response["Content-Type"]) == (
            200,
            'text/javascript; charset="utf-8"',
        ), path
        base = path.rsplit("/", 1)[0]
        for target in re.findall(
            r'^(?:import|export)\b[^;]*?from "(\.{1,2}/[^"]+)";', body.decode(), re.M | re.S
        ):
            parts = [*base.split("/"), *target.split("/")]
            resolved = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part != ".":
                    resolved.append(part)
            pending.append("/".join(resolved))
    assert seen == {
        "/static/wizard-status-demo/demo.js",
        "/static/wizard-status-demo/account.js",
        "/static/wizard-status-demo/api.js",
        "/static/wizard-status-demo/dom.js",
        "/static/wizard-status-demo/feedback.js",
        "/static/wizard-status-demo/i18n.js",
        "/static/wizard-status-demo/messages.js",
        "/static/wizard-status-demo/status-view.js",
        "/static/wizard-status-demo/steps.js",
        "/static/wizard-status/wizard-status.js",
    }


def test_the_stylesheet_is_served(client):
    response, body = _served(client, "/static/wizard-status-demo/demo.css")

    assert (response.status_code, response["Content-Type"]) == (200, 'text/css; charset="utf-8"')
    assert body == (DEMO_STATIC / "demo.css").read_bytes()


def test_the_stylesheet_uses_logical_properties_only(client):
    css = (DEMO_STATIC / "demo.css").read_text()

    physical = re.findall(
        r"(?<![\w-])(?:(?:margin|padding|border|inset)-(?:left|right|top|bottom)[\w-]*"
        r"|left|right|top|bottom|width|height|(?:min|max)-(?:width|height)|float|clear)\s*:",
        css,
    )
    assert physical == []
    assert re.findall(r"text-align\s*:\s*(\w+)", css) == ["start"]


def test_the_translation_table_names_every_business_type_and_platform():
    source = (DEMO_STATIC / "messages.js").read_text()

    business_types = re.findall(r"^ +business_type_(\w+):", source, re.M)
    platforms = re.findall(r"^ +platform_(\w+):", source, re.M)
    assert Counter(business_types) == Counter(
        {value: 3 for value in [*BusinessType.values, "choose"]}
    )
    assert Counter(platforms) == Counter({value: 3 for value in Platform.values})
