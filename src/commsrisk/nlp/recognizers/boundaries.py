r"""Boundary-free edges for patterns: Python's \b fails when Chinese or Japanese is glued to an id.

`\w` matches CJK characters, so ``邮箱是wang.xm@example.com请`` has no \b before "wang". These
look-arounds only refuse a neighbouring ASCII letter or digit.
"""

START = r"(?<![A-Za-z0-9])"
END = r"(?![A-Za-z0-9])"
DIGIT_START = r"(?<![0-9])"
DIGIT_END = r"(?![0-9])"
NOT_IN_PHONE = r"(?<![+)])(?<!\+\d[ -])(?<!\+\d\d[ -])(?<!\+\d\d\d[ -])"
"""Not right after a country code or a parenthesised trunk 0 (`+34 981987660`, `+44(0)292018244`):
digits there belong to a phone number, whatever word stands near them."""
CASE_SENSITIVE = 0x08 | 0x10  # re.MULTILINE | re.DOTALL, without Presidio's default IGNORECASE


def after_label(label: str) -> str:
    """START, or right after the id's own label (`IBANDE89...`, `IP192.0.2.1` glued in CJK text)."""
    return rf"(?:(?<={label})|{START})"
