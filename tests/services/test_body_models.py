"""Every request body of every service reads numbers strictly: JSON ``true`` is not quantity 1 and ``"100"``
is not an amount. Lax parsing lets a client's bug (or a probe) through as a different, valid-looking request."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.types import Strict

from services.kit.cards import Card
from services.orders import api as orders_api
from services.orders.models import OrderLine
from services.payments import api as payments_api
from services.payments import contract as payments_contract
from services.payments import internal as payments_internal
from services.products import api as products_api
from services.products import internal as products_internal
from services.search import api as search_api
from services.users import api as users_api

ROUTERS: tuple[APIRouter, ...] = (
    users_api.router,
    products_api.router,
    products_internal.router,
    search_api.router,
    orders_api.router,
    payments_api.router,
    payments_internal.router,
)


def _models(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        for field in annotation.model_fields.values():
            yield from _models(field.annotation)
    for arg in typing.get_args(annotation):
        yield from _models(arg)


def _is_int(annotation: object) -> bool:
    if annotation is int:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return int in typing.get_args(annotation)
    return False


def _body_models() -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.body_field is not None:
                found.update(_models(route.body_field.field_info.annotation))
    return found


def test_the_sweep_sees_the_nested_money_and_quantity_models() -> None:
    """The walk reaches nested models (order lines, the card): otherwise the check below could pass by seeing
    nothing."""
    models = _body_models()
    assert {OrderLine, Card, payments_contract.ChargeRequest, payments_contract.RefundRequest} <= models


def test_every_integer_field_of_every_request_body_is_strict() -> None:
    loose = [
        f"{model.__module__}.{model.__name__}.{name}"
        for model in _body_models()
        for name, field in model.model_fields.items()
        if _is_int(field.annotation) and not any(isinstance(m, Strict) and m.strict for m in field.metadata)
    ]
    assert loose == []


@pytest.mark.parametrize("value", [True, "100", 100.0, "1e2"])
def test_an_amount_or_quantity_that_is_not_a_json_integer_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="integer"):
        payments_contract.RefundRequest.model_validate({"amount_cents": value})
    with pytest.raises(ValueError, match="integer"):
        OrderLine.model_validate({"product_id": "00000000-0000-4000-8000-000000000000", "quantity": value})
