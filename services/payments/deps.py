"""Typed dependencies of the payments routes: the service's settings (the pool is the kit's ``PoolDep``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.kit.deps import from_state
from services.payments.settings import Settings

get_settings = from_state("settings", Settings)

SettingsDep = Annotated[Settings, Depends(get_settings)]
