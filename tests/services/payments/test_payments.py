"""Payments contract: charges, declines, card validation, idempotency, refunds, the ledger, access.

Every test ends by checking the ledger (``balanced`` fixture): after any scenario each ledger
transaction sums to zero, the whole ledger sums to zero, and per payment the ledger equals
captured - refunded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.deploy.keyring import KeyRing
from services.kit import keys
from services.kit.auth import ServiceTokenIssuer
from services.runner.postgres import PostgresServer
from tests.services.payments.support import (
    CVC,
    DECLINED,
    INSUFFICIENT,
    MASTERCARD_OK,
    VISA_OK,
    bad_tokens,
    card,
    card_data_in,
    database_of,
    ledger_problems,
    mint_token,
    service_token,
)
from tests.support import schema
from tests.support.inprocess import InProcessService
from tests.support.procs import ServiceProcess


@pytest.fixture(autouse=True)
def balanced(pg: PostgresServer, payments: InProcessService) -> Iterator[None]:
    """After every test of this module, whatever it did: the ledger balances."""
    yield
    assert ledger_problems(pg, database_of(payments.env["DATABASE_URL"])) == []


@pytest.fixture(scope="module")
def svc(keyring: KeyRing) -> dict[str, str]:
    return {"authorization": f"Bearer {service_token(keyring, 'orders', 'payments')}"}


def charge_body(number: str = VISA_OK, amount: int = 1999, **card_kw: Any) -> dict[str, Any]:
    return {
        "order_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "amount_cents": amount,
        "currency": "EUR",
        "card": card(number, **card_kw),
    }


def charge(
    payments: InProcessService, svc: dict[str, str], body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {**svc, "Idempotency-Key": key or str(uuid.uuid4())}
    return payments.client.post("/internal/v1/charges", json=body, headers=headers)


def refund(
    payments: InProcessService, svc: dict[str, str], payment_id: str, amount: int, key: str | None = None
) -> httpx.Response:
    headers = {**svc, "Idempotency-Key": key or str(uuid.uuid4())}
    return payments.client.post(
        f"/internal/v1/payments/{payment_id}/refunds", json={"amount_cents": amount}, headers=headers
    )


def test_successful_charge_returns_captured_payment_with_only_safe_card_fields(
    payments: InProcessService, svc: dict[str, str]
) -> None:
    """A capture answers 201 with brand/last4/expiry only: the number and CVC never come back."""
    body = charge_body(amount=2500)
    r = charge(payments, svc, body)
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["status"] == "captured"
    assert p["amount_cents"] == 2500
    assert p["refunded_cents"] == 0
    assert p["currency"] == "EUR"
    assert p["order_id"] == body["order_id"]
    assert p["user_id"] == body["user_id"]
    assert p["card"] == {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2031}
    assert card_data_in(r.text) == []


@pytest.mark.parametrize(("number", "reason"), [(DECLINED, "card_declined"), (INSUFFICIENT, "insufficient_funds")])
def test_test_numbers_decline_with_their_reason(
    payments: InProcessService, svc: dict[str, str], number: str, reason: str
) -> None:
    """The contract's decline numbers answer 402 payment-declined with the payment id and the reason."""
    body = charge_body(number)
    r = charge(payments, svc, body)
    assert r.status_code == 402, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/payment-declined")
    assert problem["reason"] == reason
    uuid.UUID(problem["payment_id"])
    listed = payments.client.get("/internal/v1/payments", params={"order_id": body["order_id"]}, headers=svc)
    assert [(p["id"], p["status"], p["decline_reason"]) for p in listed.json()["items"]] == [
        (problem["payment_id"], "declined", reason)
    ]


def test_other_valid_numbers_are_approved_and_spaces_are_ignored(
    payments: InProcessService, svc: dict[str, str]
) -> None:
    """Documented choice: any Luhn-valid number other than the decline numbers is approved."""
    r = charge(payments, svc, charge_body("5555 5555 5555 4444"))
    assert r.status_code == 201, r.text
    assert r.json()["card"]["brand"] == "mastercard"
    assert r.json()["card"]["last4"] == "4444"


@pytest.mark.parametrize(
    ("field", "card_kw"),
    [
        ("number", {"number": "4242424242424241"}),  # Luhn fails
        ("number", {"number": "4242-4242-4242-4242"}),
        ("number", {"number": "42424242"}),
        ("card", {"exp_year": 2020}),  # in the past
        ("card", {"exp_month": 1, "exp_year": 2026}),  # earlier this year
        ("exp_month", {"exp_month": 13}),
        ("exp_month", {"exp_month": 0}),
        ("exp_year", {"exp_year": 31}),  # two digits
        ("cvc", {"cvc": "12"}),
        ("cvc", {"cvc": "12345"}),
        ("cvc", {"cvc": "12a"}),
    ],
)
def test_invalid_cards_are_422_and_never_echoed(
    payments: InProcessService, svc: dict[str, str], field: str, card_kw: dict[str, Any]
) -> None:
    """Luhn, expiry and CVC are checked before anything is stored; the error body names the field
    but never repeats the number or CVC."""
    body = charge_body()
    body["card"].update(card_kw)
    r = charge(payments, svc, body)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"].endswith("/validation")
    assert any(e["loc"][-1] == field for e in problem["errors"]), problem
    assert VISA_OK not in r.text
    assert "4242424242424241" not in r.text
    assert CVC not in r.text
    listed = payments.client.get("/internal/v1/payments", params={"order_id": body["order_id"]}, headers=svc)
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    "mutation",
    [
        {"amount_cents": 0},
        {"amount_cents": -5},
        {"currency": "eur"},
        {"currency": "EURO"},
        {"order_id": "not-a-uuid"},
        {"extra": 1},
        {"card": {**card(), "pin": "1234"}},
        # Not JSON integers: lax parsing would read them as 1999, 1 and December.
        {"amount_cents": "1999"},
        {"amount_cents": True},
        {"amount_cents": 1999.0},
        {"card": {**card(), "exp_month": "12"}},
    ],
)
def test_bad_charge_bodies_are_422(payments: InProcessService, svc: dict[str, str], mutation: dict[str, Any]) -> None:
    r = charge(payments, svc, {**charge_body(), **mutation})
    assert r.status_code == 422, r.text


def test_charge_without_idempotency_key_is_400_and_an_overlong_key_is_422(
    payments: InProcessService, svc: dict[str, str]
) -> None:
    """A charge must be retryable safely, so the key is mandatory (IETF draft: 400 when missing)."""
    r = payments.client.post("/internal/v1/charges", json=charge_body(), headers=svc)
    assert r.status_code == 400
    assert r.json()["type"].endswith("/idempotency-key-required")
    r = charge(payments, svc, charge_body(), key="k" * 256)
    assert r.status_code == 422


def test_charge_replay_returns_identical_response_and_charges_once(
    payments: InProcessService, svc: dict[str, str]
) -> None:
    """Retrying a charge (a timeout on the caller's side) must never charge twice."""
    body = charge_body()
    key = str(uuid.uuid4())
    first = charge(payments, svc, body, key)
    second = charge(payments, svc, body, key)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert second.headers["idempotent-replayed"] == "true"
    listed = payments.client.get("/internal/v1/payments", params={"order_id": body["order_id"]}, headers=svc)
    assert len(listed.json()["items"]) == 1


def test_decline_replay_returns_the_same_402(payments: InProcessService, svc: dict[str, str]) -> None:
    body = charge_body(DECLINED)
    key = str(uuid.uuid4())
    first, second = charge(payments, svc, body, key), charge(payments, svc, body, key)
    assert first.status_code == second.status_code == 402
    assert first.content == second.content


def test_same_key_with_a_different_body_is_422_conflict(payments: InProcessService, svc: dict[str, str]) -> None:
    body = charge_body()
    key = str(uuid.uuid4())
    assert charge(payments, svc, body, key).status_code == 201
    r = charge(payments, svc, {**body, "amount_cents": body["amount_cents"] + 1}, key)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/idempotency-conflict")
    r = charge(payments, svc, {**body, "card": card(MASTERCARD_OK)}, key)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/idempotency-conflict")


def test_idempotency_keys_are_scoped_per_caller(payments: InProcessService, pg: PostgresServer) -> None:
    """The key is stored with the caller's name, so two callers can never collide on one key."""
    db = database_of(payments.env["DATABASE_URL"])
    callers = pg.psql("SELECT DISTINCT caller FROM idempotency_keys", db).split()
    assert callers == ["orders"]


def test_concurrent_duplicates_charge_once(payments: InProcessService, svc: dict[str, str]) -> None:
    """Twenty copies of one charge at once: one capture; every answer is the stored 201 or 409 in flight."""
    body = charge_body()
    key = str(uuid.uuid4())

    async def burst() -> list[httpx.Response]:
        async with payments.async_client(headers={**svc, "Idempotency-Key": key}) as c:
            return await asyncio.gather(*(c.post("/internal/v1/charges", json=body) for _ in range(20)))

    responses = asyncio.run(burst())
    statuses = sorted({r.status_code for r in responses})
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    assert created
    assert len({r.content for r in created}) == 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["type"].endswith("/idempotency-in-flight")
    assert charge(payments, svc, body, key).content == created[0].content
    listed = payments.client.get("/internal/v1/payments", params={"order_id": body["order_id"]}, headers=svc)
    assert len(listed.json()["items"]) == 1


def test_partial_and_full_refunds_never_exceed_the_capture(payments: InProcessService, svc: dict[str, str]) -> None:
    body = charge_body(amount=1000)
    pid = charge(payments, svc, body).json()["id"]
    r = refund(payments, svc, pid, 300)
    assert r.status_code == 201, r.text
    assert r.json()["payment_id"] == pid
    assert r.json()["amount_cents"] == 300
    r = refund(payments, svc, pid, 701)
    assert r.status_code == 409
    assert r.json()["type"].endswith("/refund-exceeds-capture")
    assert r.json()["refundable_cents"] == 700
    assert refund(payments, svc, pid, 700).status_code == 201
    assert refund(payments, svc, pid, 1).status_code == 409
    listed = payments.client.get("/internal/v1/payments", params={"order_id": body["order_id"]}, headers=svc)
    assert listed.json()["items"][0]["refunded_cents"] == 1000


def test_refund_replay_refunds_once(payments: InProcessService, svc: dict[str, str]) -> None:
    body = charge_body(amount=1000)
    pid = charge(payments, svc, body).json()["id"]
    key = str(uuid.uuid4())
    first, second = refund(payments, svc, pid, 400, key), refund(payments, svc, pid, 400, key)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    other = refund(payments, svc, pid, 500, key)
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-conflict")
    listed = payments.client.get("/internal/v1/payments", params={"order_id": body["order_id"]}, headers=svc)
    assert listed.json()["items"][0]["refunded_cents"] == 400


def test_concurrent_refunds_cannot_add_up_past_the_capture(payments: InProcessService, svc: dict[str, str]) -> None:
    """Ten concurrent refunds of 40% each on one capture: at most two succeed, the rest 409."""
    body = charge_body(amount=1000)
    pid = charge(payments, svc, body).json()["id"]

    async def burst() -> list[httpx.Response]:
        async with payments.async_client(headers=svc) as c:
            return await asyncio.gather(
                *(
                    c.post(
                        f"/internal/v1/payments/{pid}/refunds",
                        json={"amount_cents": 400},
                        headers={"Idempotency-Key": str(uuid.uuid4())},
                    )
                    for _ in range(10)
                )
            )

    statuses = sorted(r.status_code for r in asyncio.run(burst()))
    assert statuses == [201, 201] + [409] * 8
    listed = payments.client.get("/internal/v1/payments", params={"order_id": body["order_id"]}, headers=svc)
    assert listed.json()["items"][0]["refunded_cents"] == 800


def test_refunds_of_declined_or_unknown_payments(payments: InProcessService, svc: dict[str, str]) -> None:
    declined = charge(payments, svc, charge_body(DECLINED)).json()["payment_id"]
    r = refund(payments, svc, declined, 100)
    assert r.status_code == 409
    assert r.json()["type"].endswith("/payment-not-captured")
    r = refund(payments, svc, str(uuid.uuid4()), 100)
    assert r.status_code == 404
    r = payments.client.post(f"/internal/v1/payments/{uuid.uuid4()}/refunds", json={"amount_cents": 1}, headers=svc)
    assert r.status_code == 400
    assert refund(payments, svc, declined, 0).status_code == 422


def test_internal_routes_need_an_allowed_service_caller(
    payments: InProcessService, svc: dict[str, str], keyring: KeyRing
) -> None:
    """Only orders may call payments' internal API: no token, a user token, another service, or the gateway
    (which is given no service key; one it made up does not verify) → 401 on charges, refunds and reads."""
    pid = charge(payments, svc, charge_body()).json()["id"]
    user = {"authorization": f"Bearer {mint_token(keyring, uuid.uuid4(), roles=('admin',))}"}
    search = {"authorization": f"Bearer {service_token(keyring, 'search', 'payments')}"}
    gateway_token = ServiceTokenIssuer("gateway", keys.generate_private_pem()).token_for("payments")
    gateway = {"authorization": f"Bearer {gateway_token}"}
    for headers in ({}, user, search, gateway):
        r = payments.client.post(
            "/internal/v1/charges", json=charge_body(), headers={**headers, "Idempotency-Key": str(uuid.uuid4())}
        )
        assert r.status_code == 401, r.text
        r = payments.client.post(
            f"/internal/v1/payments/{pid}/refunds",
            json={"amount_cents": 1},
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 401, r.text
        r = payments.client.get("/internal/v1/payments", params={"order_id": str(uuid.uuid4())}, headers=headers)
        assert r.status_code == 401


def test_public_payment_is_visible_to_its_owner_and_admins_only(
    payments: InProcessService, svc: dict[str, str], keyring: KeyRing
) -> None:
    """Another user's payment is 404, not 403: its existence is not revealed."""
    body = charge_body()
    pid = charge(payments, svc, body).json()["id"]
    owner = mint_token(keyring, uuid.UUID(body["user_id"]))
    r = payments.client.get(f"/api/v1/payments/{pid}", headers={"authorization": f"Bearer {owner}"})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {
        "id",
        "order_id",
        "status",
        "amount_cents",
        "refunded_cents",
        "currency",
        "card",
        "created_at",
    }
    admin = mint_token(keyring, uuid.uuid4(), roles=("admin",))
    assert (
        payments.client.get(f"/api/v1/payments/{pid}", headers={"authorization": f"Bearer {admin}"}).status_code == 200
    )
    stranger = mint_token(keyring, uuid.uuid4())
    r = payments.client.get(f"/api/v1/payments/{pid}", headers={"authorization": f"Bearer {stranger}"})
    assert r.status_code == 404
    unknown = payments.client.get(f"/api/v1/payments/{uuid.uuid4()}", headers={"authorization": f"Bearer {owner}"})
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == r.json()["detail"]
    assert payments.client.get(f"/api/v1/payments/{pid}").status_code == 401
    assert (
        payments.client.get("/api/v1/payments/not-a-uuid", headers={"authorization": f"Bearer {owner}"}).status_code
        == 422
    )


def test_bad_tokens_are_401(payments: InProcessService, svc: dict[str, str], keyring: KeyRing) -> None:
    body = charge_body()
    pid = charge(payments, svc, body).json()["id"]
    for name, token in bad_tokens(keyring, uuid.UUID(body["user_id"])).items():
        r = payments.client.get(f"/api/v1/payments/{pid}", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 401, (name, r.text)


def test_the_database_refuses_an_unbalanced_ledger_or_an_over_refund(
    payments: InProcessService, pg: PostgresServer
) -> None:
    """The invariants hold in the schema itself, whatever code (or person) writes to it."""
    db = database_of(payments.env["DATABASE_URL"])
    with pytest.raises(RuntimeError, match="not balanced"):
        pg.psql(
            """BEGIN;
            WITH t AS (INSERT INTO ledger_transactions (id, payment_id, kind)
                       SELECT gen_random_uuid(), id, 'capture' FROM payments WHERE status = 'declined' LIMIT 1
                       RETURNING id, payment_id)
            INSERT INTO ledger_entries (transaction_id, payment_id, account, amount_cents, currency)
                 SELECT t.id, t.payment_id, leg.account, leg.amount, 'EUR'
                   FROM t, (VALUES ('customer_funds', -5), ('merchant_revenue', 4)) AS leg (account, amount);
            COMMIT;""",
            db,
        )
    with pytest.raises(RuntimeError, match="append-only"):
        pg.psql("UPDATE ledger_entries SET amount_cents = amount_cents * 2", db)
    with pytest.raises(RuntimeError, match="append-only"):
        pg.psql("DELETE FROM ledger_entries", db)
    with pytest.raises(RuntimeError, match="refunds_within_capture"):
        pg.psql(
            "UPDATE payments SET refunded_cents = amount_cents + 1 "
            "WHERE id = (SELECT id FROM payments WHERE status = 'captured' LIMIT 1)",
            db,
        )


@pytest.mark.parametrize("key", [None, "too-short"])
def test_start_up_refuses_a_missing_or_short_fingerprint_key(
    payments: InProcessService, logdir: Path, key: str | None
) -> None:
    """Without a proper provisioned key the fingerprints would be guessable: refuse to start."""
    env = {k: v for k, v in payments.env.items() if k != "CARD_FINGERPRINT_KEY"}
    if key is not None:
        env["CARD_FINGERPRINT_KEY"] = key
    proc = ServiceProcess("payments", env, logdir)
    with pytest.raises(RuntimeError, match="exited"):
        proc.start(timeout=20)
    assert "CARD_FINGERPRINT_KEY" in proc.tail().upper()


def test_metrics_count_payments_by_outcome(payments: InProcessService) -> None:
    text = payments.client.get("/metrics").text
    assert 'payments_total{outcome="captured"}' in text
    assert 'payments_total{outcome="declined"}' in text
    assert 'payments_total{outcome="refunded"}' in text


def test_schemathesis_finds_no_5xx_or_schema_violation(payments_process: ServiceProcess, keyring: KeyRing) -> None:
    """Property-based run over every payments route (internal ones with the orders credential), served by
    uvicorn as in production."""
    result = schema.run(
        payments_process.url,
        mint_token(keyring, uuid.uuid4(), roles=("admin",)),
        service_token(keyring, "orders", "payments"),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "ok: 6 operations" in result.stdout  # the 4 payments routes + /healthz + /readyz
