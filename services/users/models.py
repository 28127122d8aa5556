"""Request and response bodies. Request bodies forbid unknown fields; every string has explicit bounds
and a character set, so bad input is a 422 and never reaches the database or the hasher as a surprise."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from services.users.rules import EMAIL_MAX, EMAIL_PATTERN, PASSWORD_MAX, PASSWORD_MIN

# A display name: no control characters (C0, DEL, C1), no leading or trailing white space. White space is
# spelled out rather than `\s`: Python's `\s` includes U+0085 and JSON Schema's (ECMAScript) does not, and
# the published schema must accept exactly what the server accepts.
_WHITESPACE = r"\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CONTROL = r"\x00-\x1f\x7f-\x9f"
NAME_PATTERN = rf"^[^ {_CONTROL}{_WHITESPACE}](?:[^{_CONTROL}]*[^ {_CONTROL}{_WHITESPACE}])?$"

Role = Literal["customer", "admin"]

Email = Annotated[str, Field(max_length=EMAIL_MAX, pattern=EMAIL_PATTERN, examples=["ada@example.com"])]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=NAME_PATTERN, examples=["Ada Lovelace"])]
NewPassword = Annotated[
    str,
    Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX, description=f"{PASSWORD_MIN} to {PASSWORD_MAX} characters"),
]
# A password offered for checking: any length up to the maximum (a short one simply does not match).
GivenPassword = Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class SignUp(_Body):
    email: Email
    password: NewPassword
    name: Name


class Login(_Body):
    email: Email
    password: GivenPassword


class RefreshRequest(_Body):
    refresh_token: str = Field(min_length=1, max_length=512)


class ProfilePatch(_Body):
    """``name``, or ``password`` together with ``current_password``, or both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "minProperties": 1,
            "dependentRequired": {"password": ["current_password"], "current_password": ["password"]},
        },
    )

    # Absent, not null: an explicit null is refused (the schema does not offer it either).
    name: Name | SkipJsonSchema[None] = None
    password: NewPassword | SkipJsonSchema[None] = None
    current_password: GivenPassword | SkipJsonSchema[None] = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(value is None for value in data.values()):
            raise ValueError("omit a field rather than sending null")
        return data

    @model_validator(mode="after")
    def _check_combination(self) -> Self:
        if self.name is None and self.password is None:
            raise ValueError("give `name`, or `password` with `current_password`")
        if (self.password is None) != (self.current_password is None):
            raise ValueError("`password` and `current_password` go together")
        return self


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    roles: list[Role]
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int = Field(description="Access token lifetime in seconds")
    refresh_token: str


class Jwk(BaseModel):
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    use: Literal["sig"]
    alg: Literal["EdDSA"]


class Jwks(BaseModel):
    keys: list[Jwk]
