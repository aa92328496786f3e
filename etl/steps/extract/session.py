"""The HTTP session tweepy sends through: the configured base URL, a timeout on every request, and
every response body read as a stream within ``max_body_bytes`` (on the wire and decoded).

A body larger than the limit (8 MiB by default; a real page is well under 2 MiB) is refused as
soon as that is known, so a decompression bomb costs no more memory than the limit. The bytes read
so far are kept (:class:`BodyRefused`), with the refusal's evidence (status, declared length and
encoding, bytes read, the limit) for the manifest.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

import requests
from urllib3.response import ContentDecoder, DeflateDecoder, GzipDecoder

from etl import xapi

_TWEEPY_HOST = xapi.BASE_URL  # hard-coded in tweepy.Client.request
_READ_CHUNK = 64 * 1024  # wire bytes read a step; the limit is checked after each
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")
_HEADER_TOKEN = re.compile(r"[A-Za-z0-9_.,; -]{1,64}")
_DECODERS: dict[str, type[ContentDecoder]] = {
    "gzip": GzipDecoder,
    "x-gzip": GzipDecoder,
    "deflate": DeflateDecoder,
}


class BodyRefused(Exception):
    """A response body over the size limit (or not decodable), refused while it streams in.

    Attributes:
        reason: for messages.
        refusal: the evidence for the manifest (status, declared length and encoding, bytes read).
        kept: the bytes read from the wire before the refusal, as received (still encoded).
    """

    def __init__(self, reason: str, refusal: dict[str, Any], kept: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refusal = refusal
        self.kept = kept


class _ReadResponse(requests.Response):
    """A response whose body is already read (within the limit) and whose ``json()`` only fails
    with ``requests.JSONDecodeError``: tweepy parses error bodies with it and catches nothing else,
    so a body nested past the parser's stack would otherwise escape as a ``RecursionError``."""

    @classmethod
    def of(cls, response: requests.Response, body: bytes) -> _ReadResponse:
        read = cls()
        read.__dict__.update(response.__dict__)
        read._content = body  # requests' own slot for a body read in full
        return read

    def json(self, **kwargs: Any) -> Any:
        try:
            return super().json(**kwargs)
        except requests.JSONDecodeError:
            raise
        except Exception as exc:  # RecursionError, MemoryError's cousins: whatever json raised
            raise requests.JSONDecodeError(exc.__class__.__name__, "", 0) from None


class ApiSession(requests.Session):
    """Sends tweepy's requests to the configured base URL, with a timeout on every request, and
    reads every body as a stream within ``max_body_bytes`` (wire and decoded).

    Attributes:
        sent: requests attempted through this session, whatever came of them.
        last_body: the body of the latest response read in full (None before one is), so that what
            tweepy cannot digest is still kept.
    """

    def __init__(self, base_url: str, timeout: tuple[float, float], max_body_bytes: int) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.sent = 0
        self.last_body: bytes | None = None
        # Only what _BodyReader decodes in bounded steps (requests would add br and zstd when
        # their packages happen to be installed).
        self.headers["Accept-Encoding"] = "gzip, deflate"

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if isinstance(url, str) and url.startswith(_TWEEPY_HOST):
            url = self.base_url + url[len(_TWEEPY_HOST) :]
        kwargs.setdefault("timeout", self.timeout)
        kwargs["stream"] = True  # the body is read below, within the limit
        self.last_body = None
        self.sent += 1
        response = super().request(method, url, *args, **kwargs)
        try:
            body = _BodyReader(response, self.max_body_bytes).read()
        finally:
            response.close()  # unread bytes (a refused body) close the connection, unread
        self.last_body = body
        return _ReadResponse.of(response, body)


def _header_number(headers: Any, name: str) -> int | None:
    value = str(headers.get(name) or "").strip()
    return int(value) if _CONTENT_LENGTH.fullmatch(value) else None


def _header_token(headers: Any, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    value = str(value).strip().lower()
    return value if _HEADER_TOKEN.fullmatch(value) else "(not a header token)"


def _inflate(decoder: ContentDecoder | None, data: bytes, room: int) -> bytes:
    """``data`` decoded, stopping as soon as more than ``room`` bytes came out."""
    if decoder is None:
        return data
    out = decoder.decompress(data, max_length=room + 1)
    while decoder.has_unconsumed_tail and len(out) <= room:
        more = decoder.decompress(b"", max_length=room + 1 - len(out))
        if not more:
            break  # header or trailer bytes: they go with the next data
        out += more
    return out


class _BodyReader:
    """Reads one response body from the wire within ``limit`` bytes, wire and decoded.

    The wire bytes come from urllib3 undecoded (``decode_content=False``), so they are counted
    exactly (chunked or not) and kept as received; gzip and deflate are decoded with urllib3's own
    decoders, at most ``limit + 1`` bytes a step, so a bomb never inflates far past the limit.
    Any other ``Content-Encoding`` (the session asks for gzip or deflate only) passes through
    undecoded, as urllib3 does, and the body then fails as not JSON.
    """

    def __init__(self, response: requests.Response, limit: int) -> None:
        self.response = response
        self.limit = limit
        self.declared = _header_number(response.headers, "content-length")
        self.encoding = _header_token(response.headers, "content-encoding")
        decoder = _DECODERS.get(self.encoding or "")
        self.decoder = decoder() if decoder is not None else None
        self.wire: list[bytes] = []
        self.wire_size = 0
        self.decoded: list[bytes] = []
        self.decoded_size = 0

    def read(self) -> bytes:
        """The decoded body; :class:`BodyRefused` as soon as it is over the limit."""
        if self.declared is not None and self.declared > self.limit:
            raise self.refuse("declared length")
        if self.response.raw is None:  # an in-process transport adapter: the body is in memory
            self.received(self.response.content)
            self.decoded_part(self.response.content)
            return self.response.content
        try:
            for data in self.response.raw.stream(_READ_CHUNK, decode_content=False):
                self.received(data)
                self.decoded_part(_inflate(self.decoder, data, self.limit - self.decoded_size))
            if self.decoder is not None:
                tail = _inflate(self.decoder, b"", self.limit - self.decoded_size)
                self.decoded_part(tail + self.decoder.flush())
        except zlib.error as exc:
            raise self.refuse(f"content not valid {self.encoding} ({exc})") from None
        return b"".join(self.decoded)

    def received(self, wire: bytes) -> None:
        self.wire.append(wire)
        self.wire_size += len(wire)
        if self.wire_size > self.limit:
            raise self.refuse("wire bytes")

    def decoded_part(self, decoded: bytes) -> None:
        self.decoded.append(decoded)
        self.decoded_size += len(decoded)
        if self.decoded_size > self.limit:
            raise self.refuse("decoded bytes")

    def refuse(self, cause: str) -> BodyRefused:
        evidence = {
            "cause": cause,
            "max_body_bytes": self.limit,
            "status": self.response.status_code,
            "content_length": self.declared,
            "content_encoding": self.encoding,
            "wire_bytes_read": self.wire_size,
            "decoded_bytes_read": self.decoded_size,
            "kept": "the wire bytes read, as received",
        }
        what = "over the limit" if cause.endswith(("length", "bytes")) else "refused"
        reason = (
            f"body refused: {cause} {what} of {self.limit} bytes (HTTP "
            f"{self.response.status_code}, content-length {self.declared}, content-encoding "
            f"{self.encoding}; {self.wire_size} wire bytes read, {self.decoded_size} decoded)"
        )
        return BodyRefused(reason, evidence, b"".join(self.wire))
