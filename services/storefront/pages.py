"""The shopper's pages. Every page works without JavaScript; every form posts with a CSRF token."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from services.kit.cards import Card
from services.storefront import messages
from services.storefront.client import ApiError, ApiUnavailable, Caller, ShopClient
from services.storefront.session import Session, User, csrf_token, csrf_valid
from services.storefront.settings import Settings

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

MAX_QUANTITY = 99


class CsrfRefused(Exception):
    """A form without the session's token: never acted on."""


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def render_page(
    request: Request, session: Session, template: str, status: int, flash: str | None, **context: Any
) -> HTMLResponse:
    """A page with what every page shows: the shopper, the form token, the one-time message, the cart's size."""
    return templates.TemplateResponse(
        request,
        template,
        status_code=status,
        context={
            "session": session,
            "csrf": csrf_token(session),
            "flash": flash,
            "cart_count": sum(session.cart.values()),
            **context,
        },
    )


@dataclass(frozen=True)
class Shop:
    """What a page handler needs: the shopper's session, the API client and who is calling."""

    request: Request
    session: Session
    client: ShopClient
    settings: Settings
    caller: Caller

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        flash, self.session.flash = self.session.flash, None
        return render_page(self.request, self.session, template, status, flash, **context)

    def redirect(self, path: str, flash: str | None = None) -> RedirectResponse:
        if flash:
            self.session.flash = flash
        return RedirectResponse(path, status_code=303)

    async def token(self) -> str:
        """A fresh access token for the logged-in shopper, refreshed when it is about to expire."""
        if not self.session.logged_in:
            raise LoginRequired(self.request.url.path)
        if self.session.access_fresh():
            assert self.session.access_token is not None
            return self.session.access_token
        assert self.session.refresh_token is not None
        try:
            pair = await self.client.refresh(self.caller, self.session.refresh_token)
        except ApiError as exc:
            if exc.status in (400, 401, 422):
                self.session.forget_user()
                self.session.flash = "Your session has ended. Please log in again."
                raise LoginRequired(self.request.url.path) from None
            raise
        self.session.access_token = pair.access_token
        self.session.refresh_token = pair.refresh_token
        self.session.access_expires_at = time.time() + pair.expires_in
        return pair.access_token


async def shop(request: Request) -> Shop:
    # async: a plain ``def`` dependency would run in the thread pool, a thread hop per page.
    state = request.app.state
    return Shop(
        request=request,
        session=request.state.session,
        client=state.shop_client,
        settings=state.settings,
        caller=request.state.caller,
    )


ShopDep = Annotated[Shop, Depends(shop)]


async def require_csrf(request: Request) -> None:
    """Every form post carries the session's CSRF token. Checked before the form's own fields, so a forged
    post is refused as forged (403), never answered with what was wrong in it."""
    form = await request.form()  # parsed once: FastAPI reads the same cached form for the fields
    submitted = form.get("csrf")
    if not isinstance(submitted, str) or not csrf_valid(request.state.session, submitted):
        raise CsrfRefused


CSRF = [Depends(require_csrf)]


def _safe_next(path: str | None) -> str:
    """Only a path on this site: never an open redirect to another origin."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/"


@router.get("/", response_class=HTMLResponse)
async def catalogue(
    s: ShopDep,
    category: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> HTMLResponse:
    page, categories = await asyncio.gather(
        s.client.products(s.caller, category=category, cursor=cursor, limit=s.settings.page_size),
        s.client.categories(s.caller),
    )
    return s.render("catalogue.html", page=page, categories=categories.items, category=category)


@router.get("/search", response_class=HTMLResponse)
async def search(s: ShopDep, q: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
    if not q.strip():
        return s.render("search.html", q=q, results=None)
    results = await s.client.search(s.caller, q, category=None, limit=20)
    return s.render("search.html", q=q, results=results)


@router.get("/products/{product_id}", response_class=HTMLResponse)
async def product(s: ShopDep, product_id: uuid.UUID) -> HTMLResponse:
    item = await s.client.product(s.caller, product_id)
    return s.render(
        "product.html",
        product=item,
        in_cart=s.session.cart.get(product_id, 0),
        max_quantity=min(MAX_QUANTITY, max(item.stock_available, 1)),
    )


@router.get("/cart", response_class=HTMLResponse)
async def cart(s: ShopDep) -> HTMLResponse:
    lines, total, currency = await _priced_cart(s)
    return s.render("cart.html", lines=lines, total=total, currency=currency)


async def _priced_cart(s: Shop) -> tuple[list[dict[str, Any]], int, str | None]:
    """The cart with today's prices and stock. A product that is gone leaves the cart, with a note."""
    ids = list(s.session.cart)
    found = await asyncio.gather(*(s.client.product(s.caller, pid) for pid in ids), return_exceptions=True)
    lines: list[dict[str, Any]] = []
    for pid, item in zip(ids, found, strict=True):
        if isinstance(item, ApiError) and item.status == 404:
            del s.session.cart[pid]
            s.session.flash = "An item in your cart is no longer sold and was removed."
            continue
        if isinstance(item, BaseException):
            raise item
        quantity = s.session.cart[pid]
        lines.append(
            {
                "product": item,
                "quantity": quantity,
                "subtotal": quantity * item.price_cents,
                "short": quantity > item.stock_available,
            }
        )
    currencies = {line["product"].currency for line in lines}
    currency = currencies.pop() if len(currencies) == 1 else None
    return lines, sum(line["subtotal"] for line in lines), currency


@router.post("/cart/items", dependencies=CSRF)
async def cart_set(
    s: ShopDep,
    product_id: Annotated[uuid.UUID, Form()],
    quantity: Annotated[int, Form(ge=0, le=MAX_QUANTITY)],
    add: Annotated[bool, Form()] = False,
) -> Response:
    """Add to (``add``) or set the quantity of one cart line; 0 removes it."""
    current = s.session.cart.get(product_id, 0)
    wanted = min(current + quantity, MAX_QUANTITY) if add else quantity
    if wanted == 0:
        s.session.cart.pop(product_id, None)
        return s.redirect("/cart", "Removed from your cart.")
    if product_id not in s.session.cart and len(s.session.cart) >= s.settings.cart_max_lines:
        return s.redirect("/cart", f"Your cart holds at most {s.settings.cart_max_lines} different products.")
    await s.client.product(s.caller, product_id)  # a 404 ends here: no unknown product enters the cart
    s.session.cart[product_id] = wanted
    return s.redirect("/cart", "Added to your cart." if add else "Cart updated.")


@router.get("/signup", response_class=HTMLResponse)
async def signup_form(s: ShopDep, next: Annotated[str | None, Query(max_length=512)] = None) -> HTMLResponse:
    return s.render("signup.html", error=None, email="", name="", next=_safe_next(next))


@router.post("/signup", response_class=HTMLResponse, dependencies=CSRF)
async def signup(
    s: ShopDep,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str | None, Form(max_length=512)] = None,
) -> Response:
    try:
        await s.client.sign_up(s.caller, email=email, password=password, name=name)
        return await _log_in(s, email, password, _safe_next(next), "Welcome! Your account is ready.")
    except ApiError as exc:
        return s.render(
            "signup.html", status=exc.status, error=messages.explain(exc), email=email, name=name, next=_safe_next(next)
        )


@router.get("/login", response_class=HTMLResponse)
async def login_form(s: ShopDep, next: Annotated[str | None, Query(max_length=512)] = None) -> HTMLResponse:
    return s.render("login.html", error=None, email="", next=_safe_next(next))


@router.post("/login", response_class=HTMLResponse, dependencies=CSRF)
async def login(
    s: ShopDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str | None, Form(max_length=512)] = None,
) -> Response:
    try:
        return await _log_in(s, email, password, _safe_next(next), None)
    except ApiError as exc:
        return s.render(
            "login.html", status=exc.status, error=messages.explain(exc), email=email, next=_safe_next(next)
        )


async def _log_in(s: Shop, email: str, password: str, next_path: str, flash: str | None) -> Response:
    pair = await s.client.log_in(s.caller, email=email, password=password)
    me = await s.client.me(s.caller, pair.access_token)
    cart = dict(s.session.cart)
    s.session.forget_user()  # a new CSRF secret for the new identity
    s.session.cart = cart  # the cart a shopper filled before logging in stays theirs
    s.session.user = User(id=me.id, email=me.email, name=me.name)
    s.session.access_token = pair.access_token
    s.session.refresh_token = pair.refresh_token
    s.session.access_expires_at = time.time() + pair.expires_in
    return s.redirect(next_path, flash or f"Hello, {me.name}.")


@router.post("/logout", dependencies=CSRF)
async def logout(s: ShopDep) -> Response:
    if s.session.logged_in:
        # The cookie goes either way; if the API cannot be told, the session's tokens expire on their own.
        with contextlib.suppress(ApiError, ApiUnavailable, LoginRequired):
            await s.client.log_out(s.caller, await s.token())
    s.session.forget_user()
    s.session.cart.clear()
    return s.redirect("/", "You are logged out.")


@router.get("/checkout", response_class=HTMLResponse)
async def checkout_form(s: ShopDep) -> Response:
    await s.token()
    if not s.session.cart:
        return s.redirect("/cart", "Your cart is empty.")
    lines, total, currency = await _priced_cart(s)
    return s.render(
        "checkout.html",
        lines=lines,
        total=total,
        currency=currency,
        error=None,
        idempotency_key=secrets.token_urlsafe(24),
    )


@router.post("/checkout", response_class=HTMLResponse, dependencies=CSRF)
async def checkout(
    s: ShopDep,
    idempotency_key: Annotated[str, Form(min_length=16, max_length=64)],
    number: Annotated[str, Form(max_length=32)],
    exp_month: Annotated[str, Form(max_length=2)],
    exp_year: Annotated[str, Form(max_length=4)],
    cvc: Annotated[str, Form(max_length=4)],
) -> Response:
    """Place the order. The key comes from the form, so a double click or a resent form places one order."""
    token = await s.token()
    if not s.session.cart:
        return s.redirect("/cart", "Your cart is empty.")
    error: str | None = None
    try:
        card = Card.model_validate(
            {"number": number, "exp_month": int(exp_month), "exp_year": int(exp_year), "cvc": cvc}
        )
    except (ValueError, ValidationError):
        error = "Please check the card number, expiry and security code."
    else:
        try:
            order = await s.client.place_order(
                s.caller,
                token,
                lines=dict(s.session.cart),
                card=card.model_dump(mode="json"),
                idempotency_key=idempotency_key,
            )
        except ApiError as exc:
            error = messages.explain(exc)
        else:
            s.session.cart.clear()
            return s.redirect(f"/orders/{order.id}", "Thank you! Your order is confirmed.")
    lines, total, currency = await _priced_cart(s)
    # A failed attempt gets a new key: the API kept the old one's answer, and a retry is a new attempt.
    return s.render(
        "checkout.html",
        status=400 if error else 200,
        lines=lines,
        total=total,
        currency=currency,
        error=error,
        idempotency_key=secrets.token_urlsafe(24),
    )


@router.get("/orders", response_class=HTMLResponse)
async def orders(s: ShopDep, cursor: Annotated[str | None, Query(max_length=512)] = None) -> HTMLResponse:
    page = await s.client.orders(s.caller, await s.token(), cursor=cursor, limit=20)
    return s.render("orders.html", page=page)


@router.get("/orders/{order_id}", response_class=HTMLResponse)
async def order(s: ShopDep, order_id: uuid.UUID) -> HTMLResponse:
    item = await s.client.order(s.caller, await s.token(), order_id)
    return s.render("order.html", order=item)


@router.post("/orders/{order_id}/cancel", dependencies=CSRF)
async def cancel(s: ShopDep, order_id: uuid.UUID) -> Response:
    token = await s.token()
    try:
        await s.client.cancel(s.caller, token, order_id)
    except ApiError as exc:
        return s.redirect(f"/orders/{order_id}", messages.explain(exc))
    return s.redirect(f"/orders/{order_id}", "Your order is cancelled and refunded.")
