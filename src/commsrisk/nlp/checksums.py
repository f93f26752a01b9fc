"""Check digits of financial and national identifiers: one implementation for recognizers and fixtures."""

from __future__ import annotations

CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def iban_is_valid(iban: str) -> bool:
    """ISO 13616 mod-97 check (spaces allowed)."""
    compact = iban.replace(" ", "").upper()
    if len(compact) < 15 or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def luhn_is_valid(number: str) -> bool:
    """Luhn check of a card number (spaces and dashes allowed)."""
    digits = [int(d) for d in number if d.isdigit()]
    if len(digits) < 12:
        return False
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
    return total % 10 == 0


def cn_resident_id_is_valid(number: str) -> bool:
    """GB 11643-1999 check digit of an 18-character resident id."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    expected = "10X98765432"[sum(int(a) * w for a, w in zip(number[:17], CN_ID_WEIGHTS, strict=True)) % 11]
    return expected == number[17].upper()


def _luhn_digits_check(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


def isin_check_digit(body: str) -> str:
    """The ISIN check digit of an 11-character body (letters expanded to numbers, then Luhn)."""
    return _luhn_digits_check("".join(str(int(ch, 36)) for ch in body.upper()))


def isin_is_valid(isin: str) -> bool:
    """ISO 6166: 2 letters, 9 alphanumerics, a check digit."""
    return len(isin) == 12 and isin[:2].isalpha() and isin[11].isdigit() and isin_check_digit(isin[:11]) == isin[11]


def cusip_is_valid(cusip: str) -> bool:
    """CUSIP modulus-10 'double-add-double' check digit."""
    if len(cusip) != 9 or not cusip[8].isdigit():
        return False
    total = 0
    for i, ch in enumerate(cusip[:8].upper()):
        value = int(ch) if ch.isdigit() else (ord(ch) - 55 if ch.isalpha() else {"*": 36, "@": 37, "#": 38}.get(ch, -1))
        if value < 0:
            return False
        if i % 2 == 1:
            value *= 2
        total += value // 10 + value % 10
    return (10 - total % 10) % 10 == int(cusip[8])


def jp_my_number_check_digit(body: str) -> str:
    """The check digit of an 11-digit Japanese individual number body (マイナンバー, MIC ordinance art. 5)."""
    total = sum(int(d) * (n + 1 if n <= 6 else n - 5) for n, d in enumerate(reversed(body), start=1))
    remainder = total % 11
    return "0" if remainder <= 1 else str(11 - remainder)


def jp_my_number_is_valid(number: str) -> bool:
    """12 digits (spaces or dashes between groups allowed) whose last is the check digit."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return len(digits) == 12 and jp_my_number_check_digit(digits[:11]) == digits[11]
