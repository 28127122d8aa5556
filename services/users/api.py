"""Public routes of the users service: accounts, sessions (login, refresh, logout) and the JWKS."""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from services.kit.app import FrontRoute, path_uuid
from services.kit.auth import CurrentUser, Principal, authenticate
from services.kit.deps import PoolDep, pool_of
from services.kit.errors import Problem, problem_responses
from services.users import store
from services.users.deps import PasswordsDep, SettingsDep, SignerDep, ThrottleDep
from services.users.models import Jwks, Login, ProfilePatch, RefreshRequest, SignUp, TokenPair, UserOut
from services.users.passwords import Busy, Passwords
from services.users.throttle import LOGINS, account_key, client_address
from services.users.tokens import Signer, new_refresh_token, refresh_digest

log = logging.getLogger(__name__)

router = APIRouter()

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Problem responses of a route. 400 is FastAPI's answer to a body that is not even decodable
    (not UTF-8); a decodable but invalid body is a 422."""
    responses = problem_responses(*statuses)
    if 429 in responses:
        responses[429]["headers"] = {
            "Retry-After": {"description": "Seconds until an attempt may succeed", "schema": {"type": "integer"}}
        }
    if 401 in responses:
        responses[401]["headers"] = {
            "WWW-Authenticate": {"description": "Bearer challenge (token problems)", "schema": {"type": "string"}}
        }
    return responses


async def _active_user(pool: PoolDep, principal: CurrentUser) -> Principal:
    """The token is valid *and* its session has not been revoked (this service can check that cheaply;
    other services accept an access token until it expires, at most ACCESS_TOKEN_TTL_S)."""
    if not await store.session_is_active(pool, principal.session_id, principal.user_id):
        raise _session_ended()
    return principal


def _session_ended() -> Problem:
    return Problem(
        401, "The session has ended; log in again.", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


ActiveUser = Annotated[Principal, Depends(_active_user)]


async def _read_as(pool: asyncpg.Pool, principal: Principal, user_id: uuid.UUID) -> store.User | None:
    """The user ``user_id``, read only if the caller's session is active: the check of ``_active_user``
    and the read in one statement (the hot authenticated reads)."""
    active, user = await store.user_of_session(pool, principal.session_id, principal.user_id, user_id)
    if not active:
        raise _session_ended()
    return user


def _bad_credentials() -> Problem:
    return Problem(401, "The e-mail or password is not correct.", kind="invalid-credentials")


async def _new_hash(passwords: Passwords, password: str) -> str:
    try:
        return await passwords.hash(password)
    except Busy:
        raise Problem(
            429,
            "Too many accounts and passwords are being set up right now; retry in a moment.",
            kind="rate-limited",
            headers={"Retry-After": "1"},
            retry_after_s=1,
        ) from None


def _token_pair(signer: Signer, user: store.User, session_id: uuid.UUID, refresh_token: str) -> JSONResponse:
    body = TokenPair(
        access_token=signer.access_token(user.id, session_id, user.roles),
        expires_in=signer.ttl,
        refresh_token=refresh_token,
    )
    return JSONResponse(body.model_dump(), status_code=201, headers=_NO_STORE)


@router.post(
    "/api/v1/users",
    status_code=201,
    response_model=UserOut,
    tags=["users"],
    summary="Sign up (the account gets the customer role)",
    responses=_responses(400, 409, 422, 429),
)
async def create_user(body: SignUp, response: Response, pool: PoolDep, passwords: PasswordsDep) -> dict[str, Any]:
    password_hash = await _new_hash(passwords, body.password)
    user = await store.create_user(pool, body.email, body.name, password_hash)
    log.info("user created", extra={"event": "user_created", "user_id": str(user.id)})
    response.headers["Location"] = f"/api/v1/users/{user.id}"
    return user.public()


@router.post(
    "/api/v1/sessions",
    status_code=201,
    response_model=TokenPair,
    tags=["sessions"],
    summary="Log in: an access token and a refresh token",
    responses=_responses(400, 401, 422, 429),
)
async def create_session(
    body: Login,
    request: Request,
    pool: PoolDep,
    settings: SettingsDep,
    throttle: ThrottleDep,
    passwords: PasswordsDep,
    signer: SignerDep,
) -> JSONResponse:
    account = account_key(body.email)
    client = client_address(request, settings.trusted_proxies)
    async with throttle.attempt(pool, account, client) as attempt:
        user = await store.user_by_email(pool, body.email)
        ok = await passwords.verify(user.password_hash if user else None, body.password)
        if user is None or not ok:
            await attempt.failed()
            LOGINS.labels("bad_credentials").inc()
            log.info("login failed", extra={"event": "login_failed", "client_ip": str(client)})
            raise _bad_credentials()
        await attempt.succeeded()
    if passwords.needs_rehash(user.password_hash):
        with contextlib.suppress(Busy):  # the next login upgrades it
            new_hash = await passwords.hash(body.password)
            await store.update_password_hash(pool, user.id, user.password_hash, new_hash)
            log.info("password hash upgraded", extra={"event": "password_rehashed", "user_id": str(user.id)})
    refresh_token, digest = new_refresh_token()
    session_id = await store.start_session(pool, user.id, digest, settings.refresh_token_ttl_s)
    LOGINS.labels("success").inc()
    log.info("login", extra={"event": "login", "user_id": str(user.id), "session_id": str(session_id)})
    return _token_pair(signer, user, session_id, refresh_token)


@router.post(
    "/api/v1/sessions/refresh",
    status_code=201,
    response_model=TokenPair,
    tags=["sessions"],
    summary="Exchange a refresh token for a new pair (the old refresh token stops working)",
    responses=_responses(400, 401, 422),
)
async def refresh_session(
    body: RefreshRequest, pool: PoolDep, settings: SettingsDep, signer: SignerDep
) -> JSONResponse:
    new_token, new_digest = new_refresh_token()
    result = await store.rotate_refresh_token(
        pool, refresh_digest(body.refresh_token), new_digest, settings.refresh_token_ttl_s
    )
    if result.outcome == "reused":
        log.warning(
            "refresh token reused; session revoked",
            extra={"event": "refresh_token_reuse", "session_id": str(result.session_id)},
        )
    if result.outcome != "rotated" or result.user is None or result.session_id is None:
        raise Problem(401, "The refresh token is not valid; log in again.", kind="invalid-refresh-token")
    return _token_pair(signer, result.user, result.session_id, new_token)


@router.delete(
    "/api/v1/sessions/current",
    status_code=204,
    response_class=Response,
    tags=["sessions"],
    summary="Log out: revoke this session (its refresh tokens stop working)",
    responses=_responses(401),
)
async def delete_current_session(principal: ActiveUser, pool: PoolDep) -> Response:
    await store.revoke_session(pool, principal.session_id, principal.user_id)
    log.info("logout", extra={"event": "logout", "session_id": str(principal.session_id)})
    return Response(status_code=204)


@router.get(
    "/api/v1/users/me", response_model=UserOut, tags=["users"], summary="Own profile", responses=_responses(401)
)
async def get_me(principal: CurrentUser, pool: PoolDep) -> Response:
    user = await _read_as(pool, principal, principal.user_id)
    if user is None:
        raise Problem(401, "The account no longer exists.")
    return _profile(user)


@router.patch(
    "/api/v1/users/me",
    response_model=UserOut,
    tags=["users"],
    summary="Change the name, or the password (with current_password)",
    description="A wrong `current_password` is a 403 (kind `invalid-current-password`): the caller is "
    "authenticated, so a 401 would wrongly tell clients to drop their token. Wrong "
    "current passwords count as failed logins of the account (429 when too many). "
    "A password change revokes every other session of the account.",
    responses=_responses(400, 401, 403, 422, 429),
)
async def update_me(
    body: ProfilePatch,
    principal: ActiveUser,
    request: Request,
    pool: PoolDep,
    settings: SettingsDep,
    throttle: ThrottleDep,
    passwords: PasswordsDep,
) -> dict[str, Any]:
    user = await store.user_by_id(pool, principal.user_id)
    if user is None:
        raise Problem(401, "The account no longer exists.")
    new_hash = None
    if body.password is not None and body.current_password is not None:
        account = account_key(user.email)
        client = client_address(request, settings.trusted_proxies)
        async with throttle.attempt(pool, account, client) as attempt:
            if not await passwords.verify(user.password_hash, body.current_password):
                await attempt.failed()
                raise Problem(403, "The current password is not correct.", kind="invalid-current-password")
            await attempt.succeeded()
        new_hash = await _new_hash(passwords, body.password)
    updated = await store.update_profile(
        pool, user.id, name=body.name, password_hash=new_hash, keep_session=principal.session_id
    )
    if updated is None:
        raise Problem(401, "The account no longer exists.")
    if new_hash is not None:
        log.info(
            "password changed; other sessions revoked", extra={"event": "password_changed", "user_id": str(user.id)}
        )
    return updated.public()


@router.get(
    "/api/v1/users/{user_id}",
    response_model=UserOut,
    tags=["users"],
    summary="A user's profile (admin, or the user)",
    responses=_responses(401, 404, 422),
)
async def get_user(user_id: uuid.UUID, principal: CurrentUser, pool: PoolDep) -> Response:
    if not principal.is_admin and principal.user_id != user_id:
        await _active_user(pool, principal)  # a revoked session gets its 401 here too
        raise Problem(404, "No such user.")  # never reveal whether someone else's account exists
    user = await _read_as(pool, principal, user_id)
    if user is None:
        raise Problem(404, "No such user.")
    return _profile(user)


def _profile(user: store.User) -> Response:
    """``UserOut``'s JSON, the bytes FastAPI's ``response_model`` would make, for both ways in (the documented
    routes and ``FRONT_ROUTES``)."""
    return Response(UserOut.model_validate(user.public()).model_dump_json(), media_type="application/json")


@router.get(
    "/.well-known/jwks.json",
    response_model=Jwks,
    tags=["keys"],
    summary="Public keys that verify access tokens (the active key and those still verifying)",
)
async def get_jwks(response: Response, signer: SignerDep) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=300"
    return signer.jwks()


# The hot authenticated reads, served in front of their documented routes above (create_app's
# ``front_routes``): the same functions, called with the principal, the pool and the path parameter resolved
# here instead of by FastAPI's dependency resolution, which cost about a quarter of this service's CPU per
# read (py-spy). tests/services/users/test_front_routes.py checks both ways in answer alike.
async def _get_me_front(request: Request) -> Response:
    return await get_me(await authenticate(request), pool_of(request.app))


async def _get_user_front(request: Request) -> Response:
    principal = await authenticate(request)  # FastAPI, too, resolves the token before the path parameter
    return await get_user(path_uuid(request, "user_id"), principal, pool_of(request.app))


FRONT_ROUTES = [
    FrontRoute("/api/v1/users/me", _get_me_front, methods=["GET"]),
    FrontRoute("/api/v1/users/{user_id}", _get_user_front, methods=["GET"]),
]
