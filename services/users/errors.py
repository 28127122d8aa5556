"""Named errors of the users store: the kit's problem handler renders each (kind and wording fixed here),
so no route translates them."""

from __future__ import annotations

from services.kit.errors import Conflict


class EmailTaken(Conflict):
    """An account with this e-mail address (compared case-insensitively) exists (409)."""

    kind = "email-taken"

    def __init__(self) -> None:
        super().__init__("An account with this e-mail already exists.")
