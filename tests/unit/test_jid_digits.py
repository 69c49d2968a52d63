"""Phone numbers and JID users take ASCII digits only: ``\\d`` and ``str.isdigit`` also match
Arabic-Indic, fullwidth and other Unicode digits, which WhatsApp knows no number by."""

from __future__ import annotations

import pytest

from warest.config import ConfigError, Settings
from warest.domain.errors import InvalidValue
from warest.domain.jid import Jid, ascii_digits, recipients


def in_digits(zero: int, number: str) -> str:
    """``number`` written in the digits whose zero is the code point ``zero``."""
    return "".join(chr(zero + int(d)) for d in number)


ARABIC_INDIC = in_digits(0x0660, "62812345678")
FULLWIDTH = in_digits(0xFF10, "62812345678")
DEVANAGARI = in_digits(0x0966, "62812345678")


@pytest.mark.parametrize(
    "raw",
    [
        ARABIC_INDIC,
        FULLWIDTH,
        DEVANAGARI,
        "62812" + in_digits(0xFF10, "3") + "45678",
        "+" + in_digits(0x0660, "62") + " " + in_digits(0x0660, "812") + "-345-678",
    ],
)
def test_phone_numbers_take_ascii_digits_only(raw: str) -> None:
    assert raw.replace(" ", "").replace("-", "").replace("+", "").isdigit()  # what fooled the old rule
    with pytest.raises(InvalidValue) as error:
        Jid.parse(raw, "62", "to")
    assert error.value.field == "to" and "is not a phone number" in error.value.reason


@pytest.mark.parametrize(
    "raw",
    [
        f"{ARABIC_INDIC}@s.whatsapp.net",
        f"{FULLWIDTH}@s.whatsapp.net",
        f"{ARABIC_INDIC}@lid",
        f"{ARABIC_INDIC}-1234567@g.us",
        f"120363{FULLWIDTH}@g.us",
        "a\x00b@newsletter",
        "status\ud800@broadcast",
        f"{'1' * 65}@newsletter",
    ],
)
def test_jid_users_are_ascii(raw: str) -> None:
    with pytest.raises(InvalidValue) as error:
        Jid.parse(raw, "62", "to")
    assert error.value.field == "to"


def test_ascii_jids_and_numbers_still_parse() -> None:
    assert str(Jid.parse("0812-345-678", "62")) == "62812345678@s.whatsapp.net"
    assert str(Jid.parse("120363025246125486@newsletter")) == "120363025246125486@newsletter"
    assert str(Jid.parse("status@broadcast")) == "status@broadcast"
    assert str(Jid.parse("62812345678-1600000000@g.us")) == "62812345678-1600000000@g.us"
    assert [str(j) for j in recipients([628123456789, "628123456780"], "62")] == [
        "628123456789@s.whatsapp.net",
        "628123456780@s.whatsapp.net",
    ]
    assert ascii_digits("+62 " + in_digits(0x0660, "81") + "2-3") == "6223"


def test_the_default_country_code_takes_ascii_digits_only() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"WAREST_DEFAULT_COUNTRY_CODE": in_digits(0x0660, "62")}, dotenv=None)
    assert error.value.name == "WAREST_DEFAULT_COUNTRY_CODE"
    assert Settings.from_env({"WAREST_DEFAULT_COUNTRY_CODE": "+44"}, dotenv=None).default_country_code == "44"
