"""What a shopper reads when the API says no: one sentence per problem kind, never a stack trace."""

from __future__ import annotations

from services.storefront.client import ApiError

_DECLINES = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card was declined: insufficient funds.",
}

_KINDS = {
    "out-of-stock": "Sorry, we do not have enough of an item in your cart any more. Your cart is unchanged: "
    "lower the quantity and try again.",
    "invalid-credentials": "The e-mail or password is not correct.",
    "email-taken": "An account with this e-mail already exists. Log in instead?",
    "upstream-unavailable": "Part of the shop is not answering right now. Nothing was charged; please try "
    "again in a moment.",
    "upstream-timeout": "The shop took too long to answer. Please try again in a moment.",
    "service-unavailable": "The shop is busy right now. Please try again in a moment.",
    "idempotency-in-flight": "Your order is still being placed. Look at your orders in a moment.",
    "not-found": "We could not find that.",
    "conflict": "That cannot be done any more.",
}


def explain(error: ApiError) -> str:
    if error.kind == "payment-declined":
        reason = str(error.body.get("reason", ""))
        return (
            _DECLINES.get(reason, f"Your card was declined ({reason or 'no reason given'}).")
            + " Your cart is unchanged; try another card."
        )
    if error.kind == "rate-limited":
        wait = error.retry_after or "a few"
        return f"Too many attempts. Please wait {wait} seconds and try again."
    if error.kind == "validation":
        problems = [str(e.get("msg", "")) for e in error.body.get("errors", []) if isinstance(e, dict)]
        fields = [str(e.get("loc", [""])[-1]) for e in error.body.get("errors", []) if isinstance(e, dict)]
        pairs = "; ".join(f"{f}: {p}" for f, p in zip(fields, problems, strict=True) if p)
        return f"Please check what you entered ({pairs})." if pairs else "Please check what you entered."
    if error.kind in _KINDS:
        return _KINDS[error.kind]
    return error.detail or error.title


UNAVAILABLE = "The shop is not answering right now. Please try again in a moment."
