"""The commsrisk error tree: each error carries the HTTP status it maps to.

Messages name the value, the rule and the fix, never message text or PII values.
"""

from __future__ import annotations


class CommsriskError(Exception):
    """Base of every error commsrisk raises on purpose."""

    http_status: int = 500


class InvalidInputError(CommsriskError):
    """Input (a message, a file row, a request body) breaks a documented rule."""

    http_status = 400


class PayloadTooLargeError(InvalidInputError):
    """A request body, text or batch is over its configured limit."""

    http_status = 413


class WorkStoppedError(CommsriskError):
    """Scoring stopped before the end: the request's deadline passed or its client went away."""

    http_status = 503


class ServiceBusyError(CommsriskError):
    """The worker is scoring as many requests as it may (service.max_in_flight): retry shortly."""

    http_status = 429


class ReviewStoreError(CommsriskError):
    """The review store cannot be reached, migrated, read or written (a 503: retry later)."""

    http_status = 503


class AccessDeniedError(CommsriskError):
    """The caller's API key lacks the scope or business unit a request needs."""

    http_status = 403


class ConfigurationError(CommsriskError):
    """A settings value, policy file or recognizer config is invalid."""

    http_status = 400


class ModelNotAvailableError(CommsriskError):
    """A model (base encoder, fine-tuned delta, registry alias) cannot be found or loaded."""

    http_status = 503


class BaseModelBuildError(CommsriskError):
    """Rebuilding the base encoder from its PyPI packages failed or did not verify."""


class DataValidationError(InvalidInputError):
    """A labeled training file has too many rejected rows or none usable."""


class PromotionRefusedError(CommsriskError):
    """A candidate model may not serve: the gate failed, or the move breaks a rule."""

    http_status = 409

    def __init__(self, message: str, report: str | None = None) -> None:
        super().__init__(message)
        self.report = report
        """The gate's report (markdown) when figures were compared."""
