"""One error hierarchy for fedsante.

Every error carries an HTTP status so that the desk's single exception handler can render it, and a
message that names what was wrong and how to fix it.
"""

from __future__ import annotations


class FedsanteError(Exception):
    """Base class of every error fedsante raises on purpose."""

    status = 500

    def __init__(self, message: str, *, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or [message]


class BadRequest(FedsanteError):
    status = 400


class Unauthorized(FedsanteError):
    status = 401


class Forbidden(FedsanteError):
    status = 403


class NotFound(FedsanteError):
    status = 404


class Conflict(FedsanteError):
    status = 409


class TooManyRequests(FedsanteError):
    status = 429


class InvalidInput(FedsanteError):
    """A request body that parses but breaks its model's rules (the errors name each field)."""

    status = 422


class DataError(FedsanteError):
    """A dataset is malformed, incomplete or unknown."""

    status = 422


class ConfigError(FedsanteError):
    """A configuration file or setting is missing or invalid."""

    status = 422


class DeskUnreachable(FedsanteError):
    """The desk could not be reached over HTTP."""

    status = 503


class Unprocessable(FedsanteError):
    """A well-formed request whose content is invalid (a node's result of the wrong shape, NaN...)."""

    status = 422


class InvalidReply(FedsanteError):
    """A node's reply the desk refused; the run's stage fails with the reason instead of waiting."""

    status = 422


class RunFailed(FedsanteError):
    """A federated run stopped before it completed."""

    status = 500


def field_problems(exc, prefix: str = "") -> list[str]:
    """One 'field: problem' line per error of a pydantic ValidationError (or RequestValidationError)."""
    return [f"{prefix}{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()]
