"""Who made a change: the OS account running the command, never a name the caller typed.

`--author` was free text, so the history could name anyone; now it is only an annotation next
to the OS user, and control characters are folded so a note cannot forge a log or table row.
"""

from __future__ import annotations

import getpass
import os
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def os_user() -> str:
    """The OS account running the command, by its real uid where there is one.

    The uid's name comes first because `getpass.getuser()` trusts $USER and $LOGNAME, which anyone
    can set; it is the fallback where there is no password database (e.g. Windows).
    """
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError, AttributeError):
        pass
    try:
        return getpass.getuser()
    except (ImportError, KeyError, OSError):
        return "(unknown OS user)"


def recorded_author(annotation: str | None) -> str:
    """The author for a change record: the OS user, with --author kept only as an annotation."""
    user = os_user()
    note = _CONTROL.sub(" ", annotation or "").strip()[:200]  # one line: no forged log or table rows
    return f"{user} (annotation: {note})" if note else user
