"""The browser client and the demo page in Debian's Chromium, against real web, worker and beat.

Pages of one browser context share Web Locks and BroadcastChannels like tabs of one browser,
so two pages are two tabs. Each test signs a fresh user in through the context (the session
cookie), opens the demo page from the service's own origin and watches what a person would:
the checklist, the progress bar and the connection state (`.connection-status[data-state]`).
"""

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from onboarding import services
from outbox.models import OutboxEvent
from tests.e2e.clients import PASSWORD, ApiUser, in_django
from tests.e2e.harness import PROJECT_ROOT, async_wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", PROJECT_ROOT / "var" / "screenshots"))
DEMO_PATH = "/demo/wizard-status/"
PUSH_SECONDS = 5.0  # a push takes milliseconds; the margin is for a loaded two-core machine
TAKEOVER_SECONDS = 2.0  # contract section 7
# A page load, a ticket and a handshake, the first ones on a process that just started.
FIRST_STATUS_SECONDS = 15.0


@pytest.fixture(scope="module")
def stack(harness_factory):
    harness = harness_factory(DEBUG="1")
    web, _, _ = harness.start_stack(web=1)
    return harness, web[0]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the test command installs it (apt-get install chromium)"
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def context(browser, stack) -> AsyncIterator[BrowserContext]:
    _, web = stack
    context = await browser.new_context(base_url=web.url, locale="en-US")
    yield context
    await context.close()


@pytest.fixture
async def user(stack, transactional_db) -> AsyncIterator[ApiUser]:
    _, web = stack
    user = await ApiUser.register(web.url)
    yield user
    await user.aclose()


async def sign_in(context: BrowserContext, user: ApiUser) -> None:
    answer = await context.request.post(
        "/api/v1/auth/login", data={"username": user.username, "password": PASSWORD}
    )
    assert answer.status == 200, await answer.text()


async def open_demo(context: BrowserContext, lang: str = "en") -> Page:
    page = await context.new_page()
    await page.goto(f"{DEMO_PATH}?lang={lang}")
    await expect_state(page, "open", timeout=FIRST_STATUS_SECONDS)
    return page


async def expect_state(page: Page, state: str, timeout: float = PUSH_SECONDS) -> None:
    await expect(page.locator(".connection-status")).to_have_attribute(
        "data-state", state, timeout=timeout * 1000
    )


async def expect_met(page: Page, field: str, timeout: float = PUSH_SECONDS) -> None:
    await expect(page.locator(f'[data-field="{field}"]')).to_have_class(
        re.compile(r"\bcompleted\b"), timeout=timeout * 1000
    )


async def open_sockets(web) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = (await http.get(f"{web.url}/metrics")).text
    match = re.search(r"^wizard_socket_connections (\S+)$", metrics, re.MULTILINE)
    assert match, metrics
    return float(match.group(1))


async def one_server_socket(web) -> None:
    async def one() -> bool:
        return await open_sockets(web) == 1

    await async_wait_until(one, 5, describe="one server socket")


# The English strings of the page's tables (and the client's labels) that another language
# translates differently, yet the page shows: every visible string must be translated.
ENGLISH_LEFT_ON_THE_PAGE = """async (lang) => {
  if (lang === "en") return [];
  const { MESSAGES } = await import("/static/wizard-status-demo/messages.js");
  const { LABELS } = await import("/static/wizard-status/wizard-status.js");
  const texts = (table) => Object.values(table)
    .flatMap((value) => (typeof value === "string" ? [value] : Object.values(value)));
  const own = new Set([...texts(MESSAGES[lang]), ...Object.values(LABELS[lang])]);
  const placeholders = [...document.querySelectorAll("[placeholder]")].map((el) => el.placeholder);
  const shown = [document.body.innerText, document.title, ...placeholders].join("\\n");
  return [...texts(MESSAGES.en), ...Object.values(LABELS.en)]
    .filter((text) => !own.has(text))
    .map((text) => text.split("{")[0].trim())
    .filter((text) => text.length >= 4 && shown.includes(text));
}"""


async def two_tabs(context: BrowserContext, user: ApiUser, web) -> tuple[Page, Page]:
    """Two tabs of a signed-in user, the first one the leader: one server socket for both."""
    await sign_in(context, user)
    first = await open_demo(context)
    second = await open_demo(context)
    await one_server_socket(web)
    return first, second


def new_sockets(page: Page) -> list[str]:
    """The URLs of the sockets the page opens from now on."""
    opened: list[str] = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    return opened


async def test_two_tabs_share_one_socket_and_both_follow_a_change_made_elsewhere(
    stack, context, user
):
    _, web = stack
    first, second = await two_tabs(context, user, web)

    await user.patch_profile(first_name="Ada")

    await expect_met(first, "first_name")
    await expect_met(second, "first_name")
    assert await open_sockets(web) == 1


async def test_when_the_leader_tab_closes_the_other_takes_over_within_two_seconds(
    stack, context, user
):
    _, web = stack
    leader, follower = await two_tabs(context, user, web)
    opened = new_sockets(follower)

    await leader.close()
    started = time.monotonic()

    async def follower_connected() -> bool:
        return bool(opened)

    await async_wait_until(follower_connected, TAKEOVER_SECONDS, describe="the follower's socket")
    took_over = time.monotonic() - started
    await user.patch_profile(last_name="Lovelace")
    await expect_met(follower, "last_name")
    await expect_state(follower, "open")
    assert took_over < TAKEOVER_SECONDS
    assert "ticket=" in opened[0]


async def test_a_restarted_web_process_is_rejoined_and_shows_what_changed_meanwhile(
    stack, context, user
):
    harness, web = stack
    await sign_in(context, user)
    page = await open_demo(context)

    harness.kill(web)
    await expect_state(page, "reconnecting")
    await in_django(services.profile_update, user_id=user.id, first_name="Grace")

    async def relayed() -> bool:
        pending = OutboxEvent.objects.filter(user_id=user.id, relayed_at__isnull=True)
        return not await in_django(pending.exists)

    await async_wait_until(relayed, 10, describe="the change relayed while no web process runs")
    await asyncio.to_thread(harness.restart, web)

    # The backoff has grown while the process was down: the page comes back on its own, with
    # the change made while it was away.
    await expect_met(page, "first_name", timeout=30)
    await expect_state(page, "open")


async def test_going_offline_and_back_online_reconnects_at_once(stack, context, user):
    harness, web = stack
    await sign_in(context, user)
    page = await open_demo(context)
    opened = new_sockets(page)

    await context.set_offline(True)
    # An open socket is kept while the browser says it is offline (left to the liveness check).
    await page.wait_for_timeout(500)
    await expect_state(page, "open")
    # A deploy meanwhile (uvicorn closes every socket with 1012): no attempts while offline.
    await asyncio.to_thread(harness.restart, web)
    await expect_state(page, "offline")
    await user.patch_profile(first_name="Hedy")
    await page.wait_for_timeout(1500)  # past the first backoff delays (at most 0.5 + 1 s)
    assert opened == []

    await context.set_offline(False)
    started = time.monotonic()
    await expect_met(page, "first_name")
    back = time.monotonic() - started

    await expect_state(page, "open")
    assert len(opened) == 1
    assert back < 2, f"{back:.2f} s to reconnect after coming back online"


async def test_a_deactivated_users_page_stops_in_forbidden(stack, context, user):
    await sign_in(context, user)
    page = await open_demo(context)
    opened = new_sockets(page)

    await in_django(services.user_set_active, user_id=user.id, is_active=False)

    await expect_state(page, "forbidden")
    await page.wait_for_timeout(3000)  # long enough for several reconnect attempts
    assert opened == []
    await expect_state(page, "forbidden")


@pytest.mark.parametrize(("lang", "direction"), [("en", "ltr"), ("tr", "ltr"), ("ar", "rtl")])
async def test_the_demo_page_in_each_language(stack, context, user, lang, direction):
    await sign_in(context, user)
    await user.patch_profile(first_name="Ada", last_name="Lovelace", phone_number="+14155552671")
    await in_django(services.manual_prompt_save, user_id=user.id, content="Answer politely.")
    page = await open_demo(context, lang)
    await expect_met(page, "manual_prompt")

    html = page.locator("html")
    await expect(html).to_have_attribute("lang", lang)
    await expect(html).to_have_attribute("dir", direction)
    await expect(page.locator(".progress-fill")).to_have_attribute(
        "style", re.compile(r"width:\s*67%")
    )
    fill_share = await page.evaluate(
        "() => { const fill = document.querySelector('.progress-fill');"
        " return fill.getBoundingClientRect().width"
        " / fill.parentElement.getBoundingClientRect().width; }"
    )
    assert abs(fill_share - 0.67) < 0.01
    percent = await page.evaluate(
        "lang => new Intl.NumberFormat(lang, {style: 'percent'}).format(0.67)", lang
    )
    await expect(page.locator(".progress-text")).to_contain_text(percent)
    await expect(page.locator(".complete-wizard-btn")).to_be_disabled()
    assert await page.evaluate(ENGLISH_LEFT_ON_THE_PAGE, lang) == []

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"demo-{lang}.png", full_page=True)


async def test_a_new_user_fills_the_whole_wizard_on_the_page_while_another_tab_follows(
    stack, context, transactional_db
):
    page = await context.new_page()
    await page.goto(f"{DEMO_PATH}?lang=en")
    await page.locator(".register-toggle").click()
    register = page.locator(".register-form")
    await register.locator('[name="username"]').fill(f"demo-{time.monotonic_ns()}")
    await register.locator('[name="password"]').fill(PASSWORD)
    await register.locator(".register-btn").click()
    await expect_state(page, "open", timeout=FIRST_STATUS_SECONDS)
    other = await open_demo(context)

    async def save(field: str) -> None:
        await page.locator(f'form[data-form="{field}"] button[type="submit"]').click()
        await expect_met(other, field)
        await expect_met(page, field)

    for field, value in [
        ("first_name", "Ada"),
        ("last_name", "Lovelace"),
        ("phone_number", "+44 20 7946 0958"),
    ]:
        await page.locator(f'form[data-form="{field}"] [name="{field}"]').fill(value)
        await save(field)
    await page.locator("#step-business_type").select_option(index=1)
    await save("business_type")
    await page.locator("#step-manual_prompt").fill("Answer in the customer's language.")
    await save("manual_prompt")
    await page.locator('form[data-form="channel_connected"] [name="external_id"]').fill("@ada_shop")
    await save("channel_connected")

    await expect(other.locator(".complete-wizard-btn")).to_be_enabled()
    await other.locator(".complete-wizard-btn").click()
    for tab in (page, other):
        await expect(tab.locator(".wizard-complete")).to_be_visible(timeout=PUSH_SECONDS * 1000)
        await expect(tab.locator(".progress-fill")).to_have_attribute(
            "style", re.compile(r"width:\s*100%")
        )
