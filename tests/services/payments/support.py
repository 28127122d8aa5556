"""Helpers shared by the payments and orders tests: tokens, a JWKS endpoint, database checks.

User tokens are minted with the deployment's signing key from the keyring, exactly as the users service
signs them (EdDSA, kid, iss, aud, sub, sid, roles, exp, iat, jti), and verified by the services against
the keyring's JWKS (tests/conftest.py), so these tests can also forge the bad tokens they must refuse.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt

from services import catalog
from services.deploy.keyring import KeyRing
from services.kit import keys
from services.kit.auth import ServiceTokenIssuer
from services.runner.postgres import PostgresServer

ISSUER = "retail-platform"
AUDIENCE = "retail-api"

# Test cards. The CVCs are chosen so a grep for them cannot match amounts, years or timestamps by chance.
VISA_OK = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT = "4000000000009995"
MASTERCARD_OK = "5555555555554444"
ALL_NUMBERS = (VISA_OK, DECLINED, INSUFFICIENT, MASTERCARD_OK)
CVC = "8537"
# The services a card passes through (an order's payment, then the charge).
CARD_SERVICES = ("orders", "payments")


def card(number: str = VISA_OK, *, exp_month: int = 12, exp_year: int = 2031, cvc: str = CVC) -> dict[str, Any]:
    return {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc}


def mint_token(
    keyring: KeyRing,
    user_id: uuid.UUID,
    *,
    roles: tuple[str, ...] = ("customer",),
    lifetime: int = 900,
    **overrides: Any,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "sid": str(uuid.uuid4()),
        "roles": list(roles),
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
    }
    claims.update(overrides)
    key = keys.load_private(keyring.jwt_keys[keyring.active_kid])
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": keyring.active_kid})


def bad_tokens(keyring: KeyRing, user_id: uuid.UUID) -> dict[str, str]:
    """Tokens every service must refuse with 401."""
    good = mint_token(keyring, user_id)
    head, body, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["roles"] = ["admin"]
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    none_head = (
        base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT", "kid": keyring.active_kid}).encode())
        .rstrip(b"=")
        .decode()
    )
    other_key = keys.load_private(keys.generate_private_pem())
    return {
        "tampered": f"{head}.{forged_body}.{sig}",
        "expired": mint_token(keyring, user_id, iat=int(time.time()) - 3600, exp=int(time.time()) - 60),
        "alg-none": f"{none_head}.{body}.",
        "hs256": jwt.encode(
            {**claims, "roles": ["customer"]},
            "secret-for-hmac-confusion-tests-0123456789",
            algorithm="HS256",
            headers={"kid": keyring.active_kid},
        ),
        "wrong-key": jwt.encode(claims, other_key, algorithm="EdDSA", headers={"kid": keyring.active_kid}),
        "wrong-audience": mint_token(keyring, user_id, aud="someone-else"),
        "garbage": "not-a-jwt",
    }


def service_token(keyring: KeyRing, caller: str, callee: str) -> str:
    return ServiceTokenIssuer(caller, keyring.service_keys[caller]).token_for(callee)


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def ledger_problems(pg: PostgresServer, database: str) -> list[str]:
    """Every way the payments ledger can be out of balance; empty when it balances."""
    problems: list[str] = []
    unbalanced = pg.psql(
        "SELECT transaction_id || ':' || sum(amount_cents) FROM ledger_entries "
        "GROUP BY transaction_id HAVING sum(amount_cents) <> 0",
        database,
    )
    if unbalanced:
        problems.append(f"unbalanced transactions: {unbalanced}")
    total = pg.psql("SELECT coalesce(sum(amount_cents), 0) FROM ledger_entries", database)
    if total != "0":
        problems.append(f"ledger total is {total}, not 0")
    thin = pg.psql(
        "SELECT t.id FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id "
        "GROUP BY t.id HAVING count(e.id) < 2",
        database,
    )
    if thin:
        problems.append(f"transactions with fewer than two legs: {thin}")
    # Per payment: what the merchant keeps (revenue + refunds accounts) == captured - refunded.
    mismatched = pg.psql(
        """SELECT p.id || ' ' || p.status || ' ' || p.amount_cents || '-' || p.refunded_cents || ' vs '
                  || coalesce(sum(e.amount_cents) FILTER (WHERE e.account IN ('merchant_revenue', 'refunds')), 0)
             FROM payments p LEFT JOIN ledger_entries e ON e.payment_id = p.id
            GROUP BY p.id
           HAVING coalesce(sum(e.amount_cents) FILTER (WHERE e.account IN ('merchant_revenue', 'refunds')), 0)
                  <> CASE WHEN p.status = 'captured' THEN p.amount_cents - p.refunded_cents ELSE 0 END""",
        database,
    )
    if mismatched:
        problems.append(f"payments whose ledger differs from captured - refunded: {mismatched}")
    refunds = pg.psql(
        """SELECT p.id FROM payments p LEFT JOIN refunds r ON r.payment_id = p.id GROUP BY p.id
           HAVING coalesce(sum(r.amount_cents), 0) <> p.refunded_cents""",
        database,
    )
    if refunds:
        problems.append(f"payments whose refunds do not add up to refunded_cents: {refunds}")
    return problems


def dump_database(pg: PostgresServer, database: str) -> str:
    """Every row of every table, as pg_dump writes it."""
    result = subprocess.run(
        [str(pg.bindir / "pg_dump"), "--data-only", "-h", "127.0.0.1", "-p", str(pg.port), "-U", pg.user, database],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PGPASSFILE": str(pg.passfile)},
    )
    return result.stdout


_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


def card_data_in(text: str, numbers: tuple[str, ...] = ALL_NUMBERS, cvc: str = CVC) -> list[str]:
    """Card numbers (with or without spaces) or the test CVC (as a separate token) found in ``text``.

    UUIDs (order, payment, request ids) are masked first: a group such as ``…-8537-…`` inside one is not a
    CVC, and ids are in every log line, so without the mask the check fails at random."""
    text = _UUID.sub("<uuid>", text)
    found = []
    for number in numbers:
        spaced = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        if number in text or spaced in text:
            found.append(f"number ending {number[-4:]}")
    # As a token of its own: not inside a longer number, an id or a decimal such as a duration (85.37, 8537.2).
    if re.search(rf"(?<![0-9A-Za-z.]){cvc}(?![0-9A-Za-z.])", text):
        found.append("cvc")
    return found


def log_texts(logdir: Path) -> Iterator[tuple[str, str]]:
    for path in sorted(logdir.glob("*.log")):
        yield path.name, path.read_text(errors="replace")


def card_data_left(pg: PostgresServer, logdir: Path) -> list[str]:
    """Where card numbers or the test CVC stayed: any row of the databases of the services card data passes
    through (every orders and payments database of ``pg``, fault instances' too), any service log in
    ``logdir``. Empty when card data only passed through. Other services' rows are not read: their data
    (prices, counters) may hold the CVC's four digits by chance, and no card reaches them."""
    found: list[str] = []
    prefixes = tuple(f"{catalog.get(name).database_name}_" for name in CARD_SERVICES)
    for database in pg.psql("SELECT datname FROM pg_database").split():
        if database.startswith(prefixes):
            found += [f"database {database}: {what}" for what in card_data_in(dump_database(pg, database))]
    for name, text in log_texts(logdir):
        found += [f"log {name}: {what}" for what in card_data_in(text)]
    return found
