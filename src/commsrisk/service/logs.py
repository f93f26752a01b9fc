"""The service's own log lines, as one JSON object per line on the server's stderr.

BentoML configures its loggers only, so lines of the `commsrisk` loggers (reloads, readiness,
one line per request) never reached the server log. A JSON handler on `commsrisk` makes them
machine-readable: request id, caller, latency, counts and versions as fields, never message
text or PII values (callers pass ids and counts only).
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

HANDLER_NAME = "commsrisk-json"


def install_json_logging(level: str = "INFO") -> None:
    """Send `commsrisk.*` records to stderr as JSON lines (once per process)."""
    logger = logging.getLogger("commsrisk")
    logger.setLevel(level.upper())
    if any(handler.get_name() == HANDLER_NAME for handler in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    logger.addHandler(handler)
    logger.propagate = False
