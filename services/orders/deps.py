"""Typed dependencies of the orders routes: the settings and the saga start-up builds (``main``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.kit.deps import from_state
from services.orders.saga import Saga
from services.orders.settings import Settings

get_settings = from_state("settings", Settings)
get_saga = from_state("saga", Saga)

SettingsDep = Annotated[Settings, Depends(get_settings)]
SagaDep = Annotated[Saga, Depends(get_saga)]
