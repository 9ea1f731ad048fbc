"""Static files and the index page from a web process started by its Procfile line, DEBUG off.

The admin's stylesheet and the Swagger UI files the docs page loads come from the service
itself: the docs work without internet, and nothing needs a `collectstatic` step first.
"""

import re

import httpx
import pytest

pytestmark = pytest.mark.e2e

PRODUCTION_LIKE = {
    "DEBUG": "0",
    "SECRET_KEY": "e2e-static-files-secret-key-0123456789abcdef",
    "JWT_SIGNING_KEY": "e2e-static-files-signing-key-0123456789abcdef",
}


@pytest.fixture(scope="module")
def web(harness_factory):
    harness = harness_factory(**PRODUCTION_LIKE)
    web = harness.add_web()
    harness.launch([web])
    return web


def test_the_admin_stylesheet_is_served(web):
    answer = httpx.get(f"{web.url}/static/admin/css/base.css")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/css")
    assert "max-age" in answer.headers["cache-control"]


def test_the_docs_page_loads_swagger_ui_from_the_service(web):
    page = httpx.get(f"{web.url}/api/v1/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page.text)

    assert assets, page.text
    assert all(asset.startswith("/static/ninja/") for asset in assets), assets
    for asset in assets:
        answer = httpx.get(web.url + asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 100, asset


def test_an_unknown_static_file_is_404(web):
    assert httpx.get(f"{web.url}/static/admin/css/nothing-here.css").status_code == 404


def test_the_index_page_links_to_docs_admin_and_health(web):
    page = httpx.get(f"{web.url}/")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    links = set(re.findall(r'href="([^"]+)"', page.text))
    assert {"/api/v1/docs", "/admin/", "/healthz", "/readyz"} <= links
    for link in links:
        assert httpx.get(web.url + link).status_code in (200, 302), link
