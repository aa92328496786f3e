"""Contract formats translated once: an ODCS timestamp format in the forms code needs.

ODCS timestamp formats use Java letters (``yyyy-MM-ddTHH:mm:ss.SSSZ``); ``Z`` stands for the literal
UTC designator, as the contract's descriptions say ("with a Z suffix"). :class:`TimestampFormat`
is the one reading of such a format: the Pandera gate, the transform and the GX suites all use it.

Patterns that are searched rather than fully matched (JSON Schema's ``pattern``, GX's pandas engine,
which runs ``str.contains``) need an end anchor that a trailing line feed cannot slip past:
Python's ``$`` also matches before a final ``\\n``. :func:`end_anchored` writes such a ``$`` as ``\\Z``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from etl.errors import ContractError

if TYPE_CHECKING:
    from datetime import datetime

_FORMAT_TOKENS = re.compile(r"yyyy|MM|dd|HH|mm|ss|SSS|[A-Za-z]|.", re.DOTALL)
_FORMAT_PARTS = {
    "yyyy": ("[0-9]{4}", "%Y"),
    "MM": ("[0-9]{2}", "%m"),
    "dd": ("[0-9]{2}", "%d"),
    "HH": ("[0-9]{2}", "%H"),
    "mm": ("[0-9]{2}", "%M"),
    "ss": ("[0-9]{2}", "%S"),
    "SSS": ("[0-9]{3}", "%f"),
    "T": ("T", "T"),
    "Z": ("Z", "Z"),  # the UTC designator, as ISO 8601 writes it
}
# Separators that stand for themselves in a regex outside a class: written as they are, so the
# suites' regexes read like the format.
_PLAIN_LITERALS = frozenset("-: ")
# What a "$" can hide behind in a pattern: an escape or a character class, taken whole.
_DOLLAR_OR_UNIT = re.compile(r"\\.|\[\^?\]?(?:\\.|[^\]\\])*\]|\$", re.DOTALL)


@dataclass(frozen=True)
class TimestampFormat:
    """An ODCS timestamp format such as ``yyyy-MM-ddTHH:mm:ss.SSSZ``, in the forms code needs.

    Attributes:
        pattern: the format as a compiled regular expression (full match).
        strptime: the format for ``datetime.strptime`` / ``pandas.to_datetime``.
    """

    pattern: re.Pattern[str]
    strptime: str

    @classmethod
    def parse(cls, fmt: str) -> TimestampFormat:
        """Translate an ODCS format string.

        Args:
            fmt: the format, with tokens ``yyyy MM dd HH mm ss SSS`` and literal ``T``/``Z``.

        Returns:
            The translated format.

        Raises:
            ContractError: the format uses a token this pipeline cannot render.
        """
        regex, strp = [], []
        for token in _FORMAT_TOKENS.findall(fmt):
            if token in _FORMAT_PARTS:
                rx, sp = _FORMAT_PARTS[token]
            elif token.isalpha():
                raise ContractError(f"timestamp format {fmt!r}: unsupported token {token!r}")
            else:
                rx = token if token in _PLAIN_LITERALS else re.escape(token)
                sp = token.replace("%", "%%")
            regex.append(rx)
            strp.append(sp)
        return cls(re.compile("".join(regex)), "".join(strp))

    @property
    def search_regex(self) -> str:
        """The format as a regex for engines that search rather than fully match (GX's pandas
        engine runs ``str.contains``): anchored at both ends, with ``\\Z`` at the end so that a
        value with a trailing line feed does not match."""
        return rf"^{self.pattern.pattern}\Z"

    def render(self, moment: datetime) -> str:
        """Write an aware or UTC datetime in this format (milliseconds for ``SSS``)."""
        # strftime has no milliseconds: render around the %f the format holds, if any.
        before, found, after = self.strptime.partition("%f")
        if not found:
            return moment.strftime(before)
        millis = f"{moment.microsecond // 1000:03d}"
        return moment.strftime(before) + millis + moment.strftime(after)


@functools.cache
def end_anchored(pattern: str) -> str:
    """A pattern with each bare ``$`` written as ``\\Z``, for Python's ``re``.

    Python's ``$`` also matches before a final line feed, ECMA-262's (JSON Schema's) only at the
    end: read with ``\\Z``, ``"123\\n"`` does not pass ``^[0-9]+$``. A ``$`` inside a character
    class or escaped (``\\$``) is a literal and stays as it is.

    Args:
        pattern: a contract pattern (ECMA-262, as JSON Schema and ODCS write them).

    Returns:
        The same pattern for Python's ``re``, anchored at the very end where it says ``$``.
    """
    return _DOLLAR_OR_UNIT.sub(lambda m: r"\Z" if m.group() == "$" else m.group(), pattern)
