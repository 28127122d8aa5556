"""Typed dependencies of the search service: its settings, and the change-feed client start-up opens."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI

from services.kit.deps import from_state
from services.search.feed import HttpChangeFeed
from services.search.settings import Settings

get_settings = from_state("settings", Settings)

SettingsDep = Annotated[Settings, Depends(get_settings)]


def feed_of(app: FastAPI) -> HttpChangeFeed | None:
    """The products change-feed client; None when the indexer is off or start-up has not opened it."""
    feed: HttpChangeFeed | None = getattr(app.state, "feed", None)
    return feed
