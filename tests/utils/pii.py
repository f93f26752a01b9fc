"""Valid fake identifiers for tests, computed (not pasted) so a check-digit bug cannot hide."""

from __future__ import annotations

from commsrisk.nlp.checksums import CN_ID_WEIGHTS


def cn_resident_id(body17: str = "11010519880605123") -> str:
    """A resident id with the right GB 11643 check digit."""
    return body17 + "10X98765432"[sum(int(a) * w for a, w in zip(body17, CN_ID_WEIGHTS, strict=True)) % 11]


def iban(country: str, bban: str) -> str:
    """An IBAN with correct mod-97 check digits."""
    rearranged = bban + country + "00"
    check = 98 - int("".join(str(int(ch, 36)) for ch in rearranged)) % 97
    return f"{country}{check:02d}{bban}"


def luhn_card(prefix15: str = "453201511283036") -> str:
    """A 16-digit card number with a valid Luhn digit."""
    for last in "0123456789":
        number = prefix15 + last
        digits = [int(d) for d in number]
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
        if total % 10 == 0:
            return number
    raise AssertionError("unreachable: one digit always completes a Luhn number")
