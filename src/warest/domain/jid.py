"""WhatsApp addresses (JIDs) and recipient lists.

Accepted forms: ``<digits>@s.whatsapp.net`` (a phone user), ``<id>@lid`` (a LID user, kept
as a LID), ``<id>@g.us`` (a group), ``@newsletter`` and ``@broadcast`` ids, ``@c.us``
(mapped to ``@s.whatsapp.net``), and bare phone numbers normalised with the default
country code (leading ``00`` dropped, a leading ``0`` replaced by the country code).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from warest.domain.errors import InvalidValue

USER = "s.whatsapp.net"
LID = "lid"
GROUP = "g.us"
NEWSLETTER = "newsletter"
BROADCAST = "broadcast"
SERVERS = (USER, LID, GROUP, NEWSLETTER, BROADCAST)

# ASCII digits only: ``\d`` and ``str.isdigit`` also match Arabic-Indic, fullwidth and
# other Unicode digits, which are no phone number WhatsApp knows.
_DIGITS = re.compile(r"[0-9]{5,20}")
_GROUP_USER = re.compile(r"[0-9]{5,20}(-[0-9]{5,20})?")
_OTHER_USER = re.compile(r"[0-9A-Za-z._-]{1,64}")  # newsletter and broadcast ids
_ONLY_DIGITS = re.compile(r"[0-9]+")
_PHONE_NOISE = re.compile(r"[\s\-().+]")
MAX_RECIPIENTS = 100


@dataclass(frozen=True, order=True)
class Jid:
    user: str
    server: str

    def __str__(self) -> str:
        return f"{self.user}@{self.server}"

    @property
    def kind(self) -> str:
        """direct, group, newsletter or broadcast."""
        return {GROUP: "group", NEWSLETTER: "newsletter", BROADCAST: "broadcast"}.get(self.server, "direct")

    @property
    def is_lid(self) -> bool:
        return self.server == LID

    @property
    def phone(self) -> str | None:
        return self.user if self.server == USER else None

    @classmethod
    def parse(cls, raw: str, default_country_code: str = "62", field: str = "to") -> Jid:
        if not isinstance(raw, str) or not raw.strip():
            raise InvalidValue(field, "must be a phone number or a JID")
        value = raw.strip()
        if "@" in value:
            user, _, server = value.partition("@")
            server = server.lower()
            user = user.split(":", 1)[0]  # drop a device suffix ("123:4@s.whatsapp.net")
            if server == "c.us":
                server = USER
            if server not in SERVERS:
                raise InvalidValue(field, f"'{value}' has an unknown server '@{server}'")
            if server == GROUP and not _GROUP_USER.fullmatch(user):
                raise InvalidValue(field, f"'{value}' is not a valid group id")
            if server in (USER, LID) and not _DIGITS.fullmatch(user):
                raise InvalidValue(field, f"'{value}' is not a valid {server} user")
            if server in (NEWSLETTER, BROADCAST) and not _OTHER_USER.fullmatch(user):
                raise InvalidValue(field, f"'{value}' is not a valid {server} id")
            return cls(user, server)
        digits = _PHONE_NOISE.sub("", value)
        if not _ONLY_DIGITS.fullmatch(digits):
            raise InvalidValue(field, f"'{value}' is not a phone number")
        if digits.startswith("00"):
            digits = digits[2:]
        elif digits.startswith("0"):
            digits = default_country_code + digits[1:]
        if not _DIGITS.fullmatch(digits):
            raise InvalidValue(field, f"'{value}' must have 5 to 20 digits")
        return cls(digits, USER)


def ascii_digits(value: str) -> str:
    """The ASCII digits of ``value``, in order (other Unicode digits are not phone digits)."""
    return "".join(c for c in value if "0" <= c <= "9")


def recipients(raw: object, default_country_code: str = "62", field: str = "to") -> list[Jid]:
    """One or many recipients: a list, a JSON-array string, or a string split on , ; or newlines."""
    items: list[object]
    if isinstance(raw, list):
        items = list(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                raise InvalidValue(field, "is not a valid JSON array") from None
            if not isinstance(parsed, list):
                raise InvalidValue(field, "must be a list")
            items = parsed
        else:
            items = [p for p in re.split(r"[,;\n]", text)]
    else:
        raise InvalidValue(field, "must be a string or a list")
    out: list[Jid] = []
    for raw_item in items:
        item = str(raw_item) if isinstance(raw_item, int) and not isinstance(raw_item, bool) else raw_item
        if not isinstance(item, str):
            raise InvalidValue(field, "every recipient must be a string")
        if not item.strip():
            continue
        jid = Jid.parse(item, default_country_code, field)
        if jid not in out:
            out.append(jid)
    if not out:
        raise InvalidValue(field, "at least one recipient is required")
    if len(out) > MAX_RECIPIENTS:
        raise InvalidValue(field, f"at most {MAX_RECIPIENTS} recipients per request")
    return out
