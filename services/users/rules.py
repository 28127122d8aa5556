"""What an account's e-mail address and password must be: one place that the request bodies
(``models``) and the start-up settings (``settings``, for the first admin) both check against."""

from __future__ import annotations

import re

PASSWORD_MIN = 10
PASSWORD_MAX = 256

# ASCII addresses: a dot-atom local part and a host name with a letter TLD. Internationalised domains
# are accepted in their punycode form (xn--...); SMTPUTF8 local parts are not accepted.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
EMAIL_MAX = 254
_EMAIL = re.compile(EMAIL_PATTERN)


def check_email(value: str) -> str:
    if len(value) > EMAIL_MAX or not _EMAIL.fullmatch(value):
        raise ValueError("not an e-mail address")
    return value
