"""Typed dependencies of the users routes: the settings and what start-up builds (``main._start``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.kit.deps import from_state
from services.users.passwords import Passwords
from services.users.settings import Settings
from services.users.throttle import Throttle
from services.users.tokens import Signer

get_settings = from_state("settings", Settings)
get_signer = from_state("signer", Signer)
get_passwords = from_state("passwords", Passwords)
get_throttle = from_state("throttle", Throttle)

SettingsDep = Annotated[Settings, Depends(get_settings)]
SignerDep = Annotated[Signer, Depends(get_signer)]
PasswordsDep = Annotated[Passwords, Depends(get_passwords)]
ThrottleDep = Annotated[Throttle, Depends(get_throttle)]
