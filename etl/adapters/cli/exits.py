"""Exit codes of the ``tweetpipe`` command line, and the usage error it reports with code 2."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: reported on stderr with exit code 2."""
