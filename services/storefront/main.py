"""The storefront app: ``uvicorn services.storefront.main:app``."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.kit import tls
from services.kit.app import create_app
from services.kit.http import service_url
from services.storefront import messages
from services.storefront.client import ApiError, ApiUnavailable, Caller, ShopClient
from services.storefront.pages import CsrfRefused, LoginRequired, render_page, router
from services.storefront.session import Session, SessionCodec
from services.storefront.settings import Settings

log = logging.getLogger(__name__)

# No script at all, styles and images from this origin only, forms post only here, never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SessionMiddleware:
    """Opens the shopper's session from the cookie before the page runs, and writes the cookie back with the
    response when the page changed it (or there was none). A plain ASGI middleware: Starlette's
    BaseHTTPMiddleware runs every request through an extra task and stream."""

    def __init__(self, app: ASGIApp, cookie: str, settings: Settings) -> None:
        self.app = app
        self.cookie = cookie
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        codec: SessionCodec = request.app.state.codec
        raw = request.cookies.get(self.cookie)
        session = codec.decode(raw)
        request.state.session = session
        peer = request.client.host if request.client else None
        request.state.caller = Caller(
            request.headers.get("x-request-id", ""), request.headers.get("x-forwarded-for"), peer
        )
        before = None if raw is None else session.model_dump_json()

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if before is None or session.model_dump_json() != before:
                    cookie = Response()
                    cookie.set_cookie(
                        self.cookie,
                        codec.encode(session),
                        max_age=self.settings.session_max_age_s,
                        path="/",
                        secure=self.settings.cookie_secure,
                        httponly=True,
                        samesite="lax",
                    )
                    headers.append("set-cookie", cookie.headers["set-cookie"])
                for header, value in SECURITY_HEADERS.items():
                    if header not in headers:
                        headers[header] = value
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def cookie_name(settings: Settings) -> str:
    # __Host-: the browser accepts it only Secure, from this origin, with Path=/ and no Domain.
    return "__Host-shop" if settings.cookie_secure else "shop"


async def open_client(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    base = settings.api_url or service_url(settings, "gateway")
    identity = tls.identity(settings)
    app.state.shop_client = ShopClient(base, settings.api_timeout_s, identity.client_context() if identity else None)
    app.state.codec = SessionCodec(settings.session_key.get_secret_value())


async def close_client(app: FastAPI) -> None:
    await app.state.shop_client.aclose()


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # SESSION_KEY comes from the environment or SECRETS_DIR
    app = create_app(
        settings,
        title="Storefront",
        description="Server-rendered shop pages over the public API (backend-for-frontend).",
        routers=[router],
        on_startup=[open_client],
        on_shutdown=[close_client],
    )
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    app.add_middleware(SessionMiddleware, cookie=cookie_name(settings), settings=settings)

    def page(request: Request, status: int, title: str, message: str) -> Response:
        session: Session = getattr(request.state, "session", None) or Session()
        return render_page(request, session, "error.html", status, None, title=title, message=message)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        status = exc.status if exc.status in (404, 409, 429) else 503 if exc.status >= 500 else 400
        return page(request, status, exc.title, messages.explain(exc))

    @app.exception_handler(ApiUnavailable)
    async def api_unavailable(request: Request, exc: ApiUnavailable) -> Response:
        log.warning("api unavailable", extra={"event": "api_unavailable", "error": str(exc)})
        return page(request, 503, "The shop is not answering", messages.UNAVAILABLE)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        return page(
            request,
            403,
            "Form expired",
            "This form is out of date or came from another site; nothing was done. Reload the page and try again.",
        )

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return Response(status_code=303, headers={"Location": f"/login?next={quote(exc.next_path)}"})

    return app


app = build_app()
