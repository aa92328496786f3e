"""Secret redaction, in one place: free text about to leave the process loses its secrets.

Two callers, two needs:

- the extract step knows its bearer token (it holds it) and scrubs it, and any ``Bearer``
  credential, from its messages and from tweepy's debug log (:func:`redact_token`,
  :func:`install_bearer_log_filter`); the mark is ``[REDACTED]``;
- lineage events carry error messages and stack traces of any step: they lose the values of the
  secret environment variables and the user info of any URL (:func:`redact`); the mark is ``***``.

Both are a second line of defence behind "never put a secret there".
"""

from __future__ import annotations

import logging
import os
import re

SECRET_ENV = (
    "X_BEARER_TOKEN",
    "TWITTER_BEARER_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
"""Environment variables whose values are secrets."""

TOKEN_MARK = "[REDACTED]"
"""What stands for a token in the extract step's messages and logs."""
ENV_MARK = "***"
"""What stands for a secret in lineage events."""

_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}]+", re.IGNORECASE)
# user:password@ in any URL (a store URL, an endpoint), or quoted without its scheme (botocore's
# "Invalid bucket name" does): the credentials part goes, the host stays.
_URL_USERINFO = re.compile(r"(?<=://)[^\s/@'\"]+@|[^\s/@'\":]+:[^\s/@'\"]+@")
_MIN_ENV_SECRET = 8  # shorter values would scrub ordinary words


def redact_token(text: str, token: str = "") -> str:
    """``text`` with ``token`` and any ``Bearer`` credential replaced by ``[REDACTED]``.

    Args:
        text: a message, a log line or a traceback.
        token: the secret to scrub (empty: only ``Bearer`` credentials).

    Returns:
        The text without the token.
    """
    if token:
        text = text.replace(token, TOKEN_MARK)
    return _BEARER.sub(rf"\g<1>{TOKEN_MARK}", text)


def redact(text: str) -> str:
    """``text`` with the values of secret environment variables, and the user info of any URL
    (``s3://KEY:SECRET@bucket``), replaced by ``***``.

    Args:
        text: free text about to leave the process (an error message, a stack trace).

    Returns:
        The text without any bearer token or AWS secret known to this process.
    """
    for var in SECRET_ENV:
        secret = os.environ.get(var, "")
        if len(secret) >= _MIN_ENV_SECRET:
            text = text.replace(secret, ENV_MARK)
    return _URL_USERINFO.sub(f"{ENV_MARK}@", text)


class BearerLogFilter(logging.Filter):
    """Redacts ``Bearer`` credentials from log records (tweepy logs request headers at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message without credentials; never drops a record."""
        message = record.getMessage()
        if "bearer" in message.lower():
            record.msg = redact_token(message)
            record.args = None
        return True


def install_bearer_log_filter(logger_name: str) -> None:
    """Add a :class:`BearerLogFilter` to a logger, once.

    Args:
        logger_name: e.g. ``tweepy.client``.
    """
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, BearerLogFilter) for f in logger.filters):
        logger.addFilter(BearerLogFilter())
