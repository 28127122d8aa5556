"""A shopper in a real browser (Debian's headless Chromium, driven by Playwright) at the edge's ``/``.

The storefront is a client of the public API like any other: these journeys go browser -> nginx (TLS) ->
storefront -> nginx-free loopback -> gateway -> services, against the whole platform `up` started.
Screenshots of the main pages land in ``out/storefront/`` (uploaded by CI as artefacts).
"""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import RunningStack
from tests.support.procs import ROOT

# Debian's chromium package (`make deps`), or the browser CHROMIUM names (CI on GitHub's images: Google Chrome).
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "out" / "storefront"
GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"
# Flags for a closed network (no Google services) and a root user (no sandbox): the machine notes' set.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make deps` installs Debian's chromium package (or set CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, platform_stack: RunningStack) -> Iterator[Page]:
    # The edge's certificate comes from the stack's own CA, which this browser profile does not hold.
    context = browser.new_context(base_url=platform_stack.edge, ignore_https_errors=True)
    p = context.new_page()
    p.set_default_timeout(20_000)
    yield p
    context.close()


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _admin(stack: RunningStack) -> dict[str, str]:
    with stack.client(source="127.0.2.1") as c:
        r = c.post("/api/v1/sessions", json={"email": stack.admin_email, "password": stack.admin_password})
        assert r.status_code == 201, r.text
        return {"authorization": f"Bearer {r.json()['access_token']}"}


def _new_product(stack: RunningStack, stock: int, name: str) -> str:
    auth = _admin(stack)
    with stack.client(source="127.0.2.1") as c:
        r = c.post(
            "/api/v1/products",
            headers=auth,
            json={
                "sku": f"SF-{uuid.uuid4().hex[:10]}",
                "name": name,
                "category": "storefront-tests",
                "price_cents": 1999,
                "currency": "EUR",
                "description": "Made for the browser tests.",
            },
        )
        assert r.status_code == 201, r.text
        product_id = str(r.json()["id"])
        r = c.put(f"/api/v1/products/{product_id}/stock", headers=auth, json={"quantity": stock})
        assert r.status_code == 200, r.text
    return product_id


def _sign_up(page: Page, email: str) -> None:
    page.get_by_role("link", name="Sign up").first.click()
    _fill_sign_up(page, email)


def _fill_sign_up(page: Page, email: str) -> None:
    page.get_by_label("Name").fill("Browser Shopper")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password (at least 10 characters)").fill("correct horse battery")
    page.get_by_role("button", name="Sign up").click()


def _pay(page: Page, number: str) -> None:
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry month").fill("12")
    page.get_by_label("Expiry year (four digits)").fill("2099")
    page.get_by_label("Security code").fill("123")
    page.get_by_role("button", name="Place order").click()


def _add_to_cart(page: Page, product_id: str, quantity: int) -> None:
    page.goto(f"/products/{product_id}")
    page.get_by_label("Quantity").fill(str(quantity))
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_role("status")).to_contain_text("Added to your cart")


def test_a_shopper_searches_fills_a_cart_signs_up_pays_sees_the_order_and_cancels_it(
    page: Page, platform_stack: RunningStack
) -> None:
    name = f"Aurora Lamp {uuid.uuid4().hex[:6]}"
    product_id = _new_product(platform_stack, stock=4, name=name)

    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("All products")
    expect(page.get_by_role("navigation", name="Categories")).to_contain_text("Storefront-tests")
    _shot(page, "catalogue")

    # Search (the search service follows the products change feed within 2 s).
    search = page.get_by_role("searchbox", name="Search products")
    for _ in range(20):
        search.fill(name)
        search.press("Enter")
        if page.get_by_role("link", name=name).count():
            break
        page.wait_for_timeout(250)
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.locator(".stock")).to_have_text("Only 4 left")
    _shot(page, "product")

    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("table.lines")).to_contain_text(name)
    page.reload()
    expect(page.get_by_label(f"Quantity of {name}")).to_have_value("2")
    _shot(page, "cart")

    # Checkout asks for an account; the cart survives signing up.
    page.get_by_role("link", name="Check out").click()
    expect(page).to_have_url(re.compile(r"/login\?next=/checkout$"))
    page.get_by_role("link", name="Create an account").click()
    _fill_sign_up(page, f"shopper-{uuid.uuid4().hex[:8]}@shop.test")
    expect(page).to_have_url(re.compile(r"/checkout$"))  # back where the shopper was going
    expect(page.locator("table.lines")).to_contain_text(name)
    _pay(page, GOOD_CARD)
    expect(page.get_by_role("status")).to_have_text("Thank you! Your order is confirmed.")
    expect(page.locator("strong.status")).to_have_text("confirmed")
    _shot(page, "order")
    order_url = page.url

    page.get_by_role("link", name="Orders", exact=True).click()
    expect(page.locator("td.status").first).to_have_text("confirmed")
    page.goto(order_url)
    page.get_by_role("button", name="Cancel this order").click()
    expect(page.get_by_role("status")).to_have_text("Your order is cancelled and refunded.")
    expect(page.locator("strong.status")).to_have_text("cancelled")
    # The stock came back: the product page shows all four again.
    page.goto(f"/products/{product_id}")
    expect(page.locator(".stock")).to_have_text("Only 4 left")


def test_a_declined_card_shows_the_reason_and_keeps_the_cart(page: Page, platform_stack: RunningStack) -> None:
    product_id = _new_product(platform_stack, stock=3, name=f"Declined Kettle {uuid.uuid4().hex[:6]}")
    page.goto("/")
    _sign_up(page, f"declined-{uuid.uuid4().hex[:8]}@shop.test")
    _add_to_cart(page, product_id, 1)
    page.goto("/checkout")
    _pay(page, DECLINED_CARD)
    expect(page.get_by_role("alert")).to_have_text("Your card was declined. Your cart is unchanged; try another card.")
    _shot(page, "declined")
    page.goto("/cart")
    expect(page.locator("table.lines")).to_contain_text("Declined Kettle")
    # The stock was released: all three are still available.
    page.goto(f"/products/{product_id}")
    expect(page.locator(".stock")).to_have_text("Only 3 left")


def test_an_item_out_of_stock_is_shown_and_refused_at_checkout_with_the_cart_kept(
    page: Page, platform_stack: RunningStack
) -> None:
    product_id = _new_product(platform_stack, stock=2, name=f"Last Tent {uuid.uuid4().hex[:6]}")
    page.goto("/")
    _sign_up(page, f"stock-{uuid.uuid4().hex[:8]}@shop.test")
    _add_to_cart(page, product_id, 2)
    # Meanwhile someone else buys one: only 1 is left when this shopper pays for 2.
    with platform_stack.client(source="127.0.2.1") as c:
        assert (
            c.put(
                f"/api/v1/products/{product_id}/stock", headers=_admin(platform_stack), json={"quantity": 1}
            ).status_code
            == 200
        )
    page.goto("/checkout")
    _pay(page, GOOD_CARD)
    expect(page.get_by_role("alert")).to_contain_text("we do not have enough of an item in your cart")
    expect(page.locator("table.lines")).to_contain_text("Only 1 available")
    with platform_stack.client(source="127.0.2.1") as c:
        assert (
            c.put(
                f"/api/v1/products/{product_id}/stock", headers=_admin(platform_stack), json={"quantity": 0}
            ).status_code
            == 200
        )
    page.goto(f"/products/{product_id}")
    expect(page.locator(".stock")).to_have_text("Out of stock")
    expect(page.get_by_role("button", name="Add to cart")).to_have_count(0)


def test_logging_out_ends_the_session_and_empties_the_cart(page: Page, platform_stack: RunningStack) -> None:
    product_id = _new_product(platform_stack, stock=5, name=f"Logout Mug {uuid.uuid4().hex[:6]}")
    page.goto("/")
    _sign_up(page, f"logout-{uuid.uuid4().hex[:8]}@shop.test")
    _add_to_cart(page, product_id, 1)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_have_text("You are logged out.")
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    page.goto("/orders")
    expect(page).to_have_url(re.compile(r"/login\?next=/orders$"))
    page.goto("/cart")
    expect(page.get_by_text("Your cart is empty.")).to_be_visible()


def test_too_many_wrong_passwords_are_told_to_wait_not_shown_an_error_page(
    page: Page, platform_stack: RunningStack
) -> None:
    email = f"throttled-{uuid.uuid4().hex[:8]}@shop.test"
    page.goto("/")
    _sign_up(page, email)
    page.get_by_role("button", name="Log out").click()
    messages = []
    for _ in range(8):
        page.goto("/login")
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        messages.append(page.get_by_role("alert").inner_text())
        if messages[-1].startswith("Too many attempts"):
            break
    assert messages[0] == "The e-mail or password is not correct."
    assert re.fullmatch(r"Too many attempts\. Please wait \d+ seconds and try again\.", messages[-1]), messages
    expect(page.get_by_label("E-mail")).to_have_value(email)  # what the shopper typed is kept


def _pid(stack: RunningStack, name: str) -> int:
    return int(json.loads(stack.layout.state_file.read_text())["children"][name]["pid"])


def test_a_page_while_search_is_down_says_so_and_the_rest_of_the_shop_works(
    page: Page, platform_stack: RunningStack
) -> None:
    pid = _pid(platform_stack, "search")
    os.kill(pid, signal.SIGSTOP)  # hung, not dead: nothing restarts it
    try:
        page.goto("/search?q=lamp")
        expect(page.get_by_role("alert")).to_be_visible()
        text = page.get_by_role("alert").inner_text()
        assert re.search(r"not answering|took too long|busy", text), text
        assert "Traceback" not in page.content()
        _shot(page, "search-down")
        page.goto("/")
        expect(page.get_by_role("heading", level=1)).to_have_text("All products")
    finally:
        os.kill(pid, signal.SIGCONT)


def test_the_session_cookie_is_secure_httponly_and_holds_no_readable_token(
    page: Page, platform_stack: RunningStack
) -> None:
    page.goto("/")
    _sign_up(page, f"cookie-{uuid.uuid4().hex[:8]}@shop.test")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["__Host-shop"]
    assert session["secure"] is True
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert "eyJ" not in session["value"]  # no JWT (base64url of '{"') anywhere in it
    assert page.evaluate("document.cookie") == ""  # a script in the page could not read it either
    # The browser never talks to the API with a bearer token: the API without one refuses the order list.
    with platform_stack.client(cookies={"__Host-shop": session["value"]}) as c:
        assert c.get("/api/v1/orders").status_code == 401
