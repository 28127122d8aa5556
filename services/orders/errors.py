"""Named errors of the orders API: each fixes its status, kind, wording and extension members once, and
the kit's problem handler renders it."""

from __future__ import annotations

import uuid

from services.kit.errors import Conflict, NotFound, ServiceUnavailable


class OrderNotFound(NotFound):
    """No such order, or one the caller may not see: the answer never reveals another user's order (404)."""

    def __init__(self) -> None:
        super().__init__("No such order.")


class OrderShipped(Conflict):
    """A shipped order can no longer be cancelled (409)."""

    kind = "order-shipped"

    def __init__(self) -> None:
        super().__init__("The order has shipped and can no longer be cancelled.", order_status="shipped")


class WrongOrderState(Conflict):
    """The order's state does not allow the action (409); ``order_status`` says which state it is in."""

    kind = "order-state"

    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"An order in state {status!r} cannot be {action}.", order_status=status)


class CancelDeferred(ServiceUnavailable):
    """The refund or the stock return could not be done now; recovery completes the cancellation (503,
    the generic ``upstream-unavailable`` kind)."""

    def __init__(self, order_id: uuid.UUID) -> None:
        super().__init__(
            "The refund or the stock return could not be done now; the cancellation will complete by itself.",
            order_id=str(order_id),
            order_status="cancelling",
        )
