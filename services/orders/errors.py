"""Named errors of the orders API: each fixes its status, kind, wording and extension members once, and
the kit's problem handler renders it."""

from __future__ import annotations

import uuid

from services.kit.errors import Problem


class OrderNotFound(Problem):
    """No such order, or one the caller may not see: the answer never reveals another user's order (404)."""

    def __init__(self) -> None:
        super().__init__(404, "No such order.")


class OrderShipped(Problem):
    """A shipped order can no longer be cancelled (409)."""

    def __init__(self) -> None:
        super().__init__(409, "The order has shipped and can no longer be cancelled.", kind="order-shipped",
                         order_status="shipped")


class WrongOrderState(Problem):
    """The order's state does not allow the action (409); ``order_status`` says which state it is in."""

    def __init__(self, action: str, status: str) -> None:
        super().__init__(409, f"An order in state {status!r} cannot be {action}.", kind="order-state",
                         order_status=status)


class CancelDeferred(Problem):
    """The refund or the stock return could not be done now; recovery completes the cancellation (503)."""

    def __init__(self, order_id: uuid.UUID) -> None:
        super().__init__(503, "The refund or the stock return could not be done now; the cancellation will "
                         "complete by itself.", kind="upstream-unavailable", order_id=str(order_id),
                         order_status="cancelling")
