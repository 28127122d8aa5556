"""Named errors of the users store: the kit's problem handler renders each (kind and wording fixed here),
so no route translates them."""

from __future__ import annotations

from services.kit.errors import Problem


class EmailTaken(Problem):
    """An account with this e-mail address (compared case-insensitively) exists (409)."""

    def __init__(self) -> None:
        super().__init__(409, "An account with this e-mail already exists.", kind="email-taken")
