"""The demo page: a working onboarding wizard built on the service's own browser client.

The page is a shell: every visible string comes from its translation table
(static/wizard-status-demo/messages.js) and every datum from the REST API and the socket.
The view only picks the language and says who is signed in.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.utils.translation import get_language_info
from django.utils.translation.trans_real import parse_accept_lang_header
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

# The languages the demo page's translation table holds; the first is the fallback.
DEMO_LANGUAGES = ("en", "tr", "ar")


def _supported(tag: str) -> str | None:
    """`tr`, `tr-TR` or `TR` -> "tr"; a language the page does not speak -> None."""
    primary = tag.strip().lower().split("-", 1)[0]
    return primary if primary in DEMO_LANGUAGES else None


def demo_language(request: HttpRequest) -> str:
    """`?lang=` if the page speaks it, else the best of the browser's languages, else English."""
    if asked := _supported(request.GET.get("lang", "")):
        return asked
    # Sorted by preference; a malformed header parses to nothing.
    for tag, quality in parse_accept_lang_header(request.headers.get("Accept-Language", "")):
        if quality > 0 and (match := _supported(tag)):
            return match
    return DEMO_LANGUAGES[0]


@require_safe
@never_cache
@ensure_csrf_cookie
def wizard_status_demo(request: HttpRequest) -> HttpResponse:
    lang = demo_language(request)
    user = request.user
    context = {
        "lang": lang,
        "dir": "rtl" if get_language_info(lang)["bidi"] else "ltr",
        "signed_in": user.is_authenticated,
        "username": user.get_username() if user.is_authenticated else "",
        "csrf_cookie_name": settings.CSRF_COOKIE_NAME,
        # Each language named in itself, for the switcher.
        "languages": [(code, get_language_info(code)["name_local"]) for code in DEMO_LANGUAGES],
    }
    response = render(request, "realtime/wizard_status_demo.html", context)
    response["Content-Language"] = lang
    patch_vary_headers(response, ("Accept-Language",))
    return response
