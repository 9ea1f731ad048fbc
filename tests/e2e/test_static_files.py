"""Static files and the index page from a web process started by its Procfile line, DEBUG off.

The admin's stylesheet and the Swagger UI files the docs page loads come from the service
itself: the docs work without internet, and nothing needs a `collectstatic` step first.
"""

import re
from urllib.parse import urljoin

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


def test_the_index_page_links_to_docs_admin_demo_and_health(web):
    page = httpx.get(f"{web.url}/")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    links = set(re.findall(r'href="([^"]+)"', page.text))
    assert {"/api/v1/docs", "/admin/", "/demo/wizard-status/", "/healthz", "/readyz"} <= links
    for link in links:
        assert httpx.get(web.url + link).status_code in (200, 302), link


@pytest.mark.parametrize(
    ("name", "content_type", "marker"),
    [
        ("wizard-status.js", "text/javascript", "export class WizardStatusClient"),
        ("wizard-status.d.ts", "text/plain", "export interface WizardStatus"),
        ("react.js", "text/javascript", "export function useWizardStatus"),
        ("vue.js", "text/javascript", "export function useWizardStatus"),
    ],
)
def test_the_browser_client_is_served_with_its_types(web, name, content_type, marker):
    answer = httpx.get(f"{web.url}/static/wizard-status/{name}")

    assert answer.status_code == 200, name
    assert answer.headers["content-type"].startswith(content_type), answer.headers
    assert marker in answer.text


def test_the_demo_page_and_its_modules_are_served(web):
    page = httpx.get(f"{web.url}/demo/wizard-status/")
    assert page.status_code == 200
    scripts = re.findall(r'src="([^"]+\.js)"', page.text)
    assert scripts == ["/static/wizard-status-demo/demo.js"], scripts
    demo = httpx.get(web.url + scripts[0])
    imports = {
        urljoin(demo.url.path, module) for module in re.findall(r'from "([^"]+)"', demo.text)
    }

    assert "/static/wizard-status/wizard-status.js" in imports
    for module in imports:
        assert httpx.get(web.url + module).status_code == 200, module
