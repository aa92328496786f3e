"""One object-store interface, two backends: S3 (boto3) and a local directory.

Keys are the same in both (``raw/...``, ``staging/...``, ``curated/...``), so the pipeline does not
care where it writes. ``open_store("s3://bucket/prefix")`` or ``open_store("/some/dir")``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

# The store URL is a setting: its shape is checked once, in etl.config (the base layer), which
# reads pipeline.yaml's store: too.
from etl.config import parse_store_url
from etl.errors import ObjectExistsError, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

# The reachability check of an S3 store fails fast: an unreachable endpoint is reported in
# seconds, not after boto3's default minute-long connect timeout and five attempts.
PROBE_TIMEOUT = 5.0
PROBE_ATTEMPTS = 2


@dataclass(frozen=True)
class PutResult:
    """What a write-once put did.

    Attributes:
        key: the object key.
        sha256: hex digest of the body.
        size: body length in bytes.
        created: True when this call created the object, False when an identical one was there.
    """

    key: str
    sha256: str
    size: int
    created: bool


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing reports it.

    Attributes:
        key: the object key.
        size: length in bytes.
        modified: when it was last written (UTC).
    """

    key: str
    size: int
    modified: datetime


DELETE_BATCH = 1000
"""Most keys one delete request names (S3 ``DeleteObjects`` takes up to 1,000)."""


class Store(Protocol):
    """The object store every step reads from and writes to."""

    url: str
    namespace: str

    def get(self, key: str) -> bytes: ...
    def put(self, key: str, body: bytes, content_type: str = ...) -> None: ...
    def put_file(self, key: str, path: Path, content_type: str = ...) -> None: ...
    def download(self, key: str, path: Path) -> None: ...
    def put_once(self, key: str, body: bytes, content_type: str = ...) -> PutResult: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def copy(self, src: str, dst: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def scan(self, prefix: str) -> Iterator[StoredObject]: ...
    def delete_many(self, keys: Sequence[str]) -> int: ...


def sha256_hex(body: bytes) -> str:
    """Hex SHA-256 of ``body``."""
    return hashlib.sha256(body).hexdigest()


def read_json(store: Store, key: str) -> dict[str, Any] | None:
    """Read a JSON object from the store, or None when the key is absent.

    Args:
        store: where to read.
        key: the object key.

    Returns:
        The parsed object, or None.

    Raises:
        ValueError: the object is not a JSON object, whatever the parser raised on it.
    """
    if not store.exists(key):
        return None
    body = store.get(key)
    try:
        doc = json.loads(body)
    except Exception as exc:  # not only ValueError: nesting past the stack raises RecursionError
        detail = f"{exc.__class__.__name__}: {exc}"[:200]
        raise ValueError(f"{store.url}/{key} is not valid JSON ({detail})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{store.url}/{key} is not a JSON object")
    return doc


def open_store(url: str, *, check: bool = False) -> Store:
    """Open the store named by ``url``.

    Args:
        url: ``s3://bucket[/prefix]`` for S3 (credentials from the default chain, endpoint from
            ``AWS_ENDPOINT_URL``), or a local directory path (``file://`` prefix optional).
        check: make sure the store can be used before returning it: a local directory is
            created if missing and must be writable; an S3 bucket must answer a ``HeadBucket``
            within :data:`PROBE_TIMEOUT` seconds per attempt.

    Returns:
        A store whose keys are relative to the prefix or directory.

    Raises:
        StoreError: the URL is malformed, or (``check``) the store cannot be used.
    """
    location = parse_store_url(url)
    if location.kind == "s3":
        s3 = S3Store(location.bucket, location.prefix)
        if check:
            s3.check()
        return s3
    assert location.path is not None
    local = LocalStore(location.path)
    if check:
        local.check()
    return local


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid store key {key!r}")
    return key


class LocalStore:
    """A directory; writes go to a temporary file first and are renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.url = str(self.root)
        self.namespace = "file"

    def check(self) -> None:
        """Make sure the root is a writable directory, creating it if missing.

        Raises:
            StoreError: it is a file, cannot be created, or is not writable.
        """
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(
                f"store {self.root} is not a directory: give a directory or s3://bucket/prefix"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"store {self.root} cannot be created ({exc.strerror or type(exc).__name__}): "
                "give a writable directory or s3://bucket/prefix"
            ) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(f"store {self.root} is not writable: give a writable directory")

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def _write_temp(self, path: Path, write: Callable[[IO[bytes]], None]) -> Path:
        """A temporary file beside ``path`` filled by ``write``; removed again if anything fails
        (a full disk, say), so no ``.tmp-*`` file outlives a failed write."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            try:
                fh = os.fdopen(fd, "wb")
            except BaseException:
                os.close(fd)
                raise
            with fh:
                write(fh)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return Path(tmp)

    def _write(self, path: Path, write: Callable[[IO[bytes]], None]) -> None:
        tmp = self._write_temp(path, write)
        try:
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self._write(self._path(key), functools.partial(_write_bytes, body))

    def put_file(
        self, key: str, path: Path, content_type: str = "application/octet-stream"
    ) -> None:
        self._write(self._path(key), lambda fh: _copy_from(path, fh))

    def download(self, key: str, path: Path) -> None:
        source = self._path(key)
        self._write(path, lambda fh: _copy_from(source, fh))

    def put_once(
        self, key: str, body: bytes, content_type: str = "application/octet-stream"
    ) -> PutResult:
        path = self._path(key)
        digest = sha256_hex(body)
        tmp = self._write_temp(path, functools.partial(_write_bytes, body))
        try:
            # link() fails if the target exists: an atomic create-if-absent on POSIX.
            os.link(tmp, path)
            created = True
        except FileExistsError:
            if sha256_hex(path.read_bytes()) != digest:
                raise ObjectExistsError(
                    f"{key} already exists with a different body; raw objects are never overwritten"
                ) from None
            created = False
        finally:
            _unlink_quietly(tmp)
        return PutResult(key, digest, len(body), created)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix if prefix else self.root
        # S3 prefixes are plain strings: "raw/s=a" also matches "raw/s=ab/...", so a prefix that
        # does not end at a directory boundary is searched from its parent.
        start = base if not prefix or prefix.endswith("/") else base.parent
        if not start.is_dir():
            return []
        keys = []
        # Only the entries of ``start`` that the prefix's last part can match are walked: listing
        # one run's results must not walk every run's folder.
        stem = "" if not prefix or prefix.endswith("/") else base.name
        tops = [c for c in start.iterdir() if c.name.startswith(stem)]
        found = (q for c in tops for q in ([c] if c.is_file() else c.rglob("*")))
        for p in found:
            if p.is_file() and not p.name.startswith(".tmp-"):
                key = p.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def copy(self, src: str, dst: str) -> None:
        self.put_file(dst, self._path(src))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def scan(self, prefix: str) -> Iterator[StoredObject]:
        """Objects under ``prefix``, in key order, one directory at a time (never all at once).

        Args:
            prefix: a key prefix.

        Yields:
            Each object with its size and modification time.
        """
        base = self.root / prefix if prefix else self.root
        start = base if not prefix or prefix.endswith("/") else base.parent
        yield from self._scan_dir(start, prefix)

    def _scan_dir(self, directory: Path, prefix: str) -> Iterator[StoredObject]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        # Keys sort as strings ("a/b" after "a-b"); a directory's keys are its name plus "/".
        named = sorted(((e.name + "/" if e.is_dir() else e.name), e) for e in entries)
        for _, entry in named:
            if entry.is_dir(follow_symlinks=False):
                yield from self._scan_dir(Path(entry.path), prefix)
            elif entry.is_file(follow_symlinks=False) and not entry.name.startswith(".tmp-"):
                key = Path(entry.path).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    info = entry.stat()
                    when = datetime.fromtimestamp(info.st_mtime, UTC)
                    yield StoredObject(key, info.st_size, when)

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete objects; empty directories left behind are removed too.

        Args:
            keys: object keys (missing ones are ignored).

        Returns:
            How many keys were named.
        """
        parents: set[Path] = set()
        for key in keys:
            self.delete(key)
            parents.add(self._path(key).parent)
        for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            while parent != self.root and parent.is_relative_to(self.root):
                try:
                    parent.rmdir()  # only when empty
                except OSError:
                    break
                parent = parent.parent
        return len(keys)


def _unlink_quietly(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _write_bytes(body: bytes, dst: IO[bytes]) -> None:
    dst.write(body)


def _copy_from(source: Path, dst: IO[bytes]) -> None:
    with open(source, "rb") as src:
        while chunk := src.read(1 << 20):
            dst.write(chunk)


class S3Store:
    """An S3 bucket (or MinIO, LocalStack, moto) under an optional key prefix."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self._own_client = client is None
        if client is None:
            import boto3

            # endpoint_url comes from AWS_ENDPOINT_URL through boto3's own configuration chain.
            client = boto3.client("s3")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.namespace = f"s3://{bucket}"

    def check(self) -> None:
        """Make sure the bucket answers: one ``HeadBucket`` with short timeouts, few attempts.

        A store opened with the default credential chain is probed through a client of the same
        chain with :data:`PROBE_TIMEOUT` and :data:`PROBE_ATTEMPTS`; a client handed in (an
        Airflow connection's) is probed as it is.

        Raises:
            StoreError: no credentials, an unreachable endpoint, no such bucket, access denied.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        probe = self.client
        if self._own_client:
            import boto3
            from botocore.config import Config

            probe = boto3.client(
                "s3",
                config=Config(
                    connect_timeout=PROBE_TIMEOUT,
                    read_timeout=PROBE_TIMEOUT,
                    retries={"total_max_attempts": PROBE_ATTEMPTS, "mode": "standard"},
                ),
            )
        try:
            probe.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            raise StoreError(f"store {self.url}: {_client_error_advice(exc)}") from None
        except BotoCoreError as exc:
            endpoint = _endpoint_label(getattr(probe.meta, "endpoint_url", None))
            raise StoreError(f"store {self.url}: {_botocore_advice(exc, endpoint)}") from None

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _unkey(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def get(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        return body

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=body, ContentType=content_type
        )

    def put_file(
        self, key: str, path: Path, content_type: str = "application/octet-stream"
    ) -> None:
        self.client.upload_file(
            str(path), self.bucket, self._key(key), ExtraArgs={"ContentType": content_type}
        )

    def download(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, self._key(key), str(path))

    def put_once(
        self, key: str, body: bytes, content_type: str = "application/octet-stream"
    ) -> PutResult:
        from botocore.exceptions import ClientError

        digest = hashlib.sha256(body)
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=body,
                ContentType=content_type,
                IfNoneMatch="*",
                ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
            )
            created = True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code not in ("PreconditionFailed", "ConditionalRequestConflict") and status != 412:
                raise
            if sha256_hex(self.get(key)) != digest.hexdigest():
                raise ObjectExistsError(
                    f"{self.url}/{key} already exists with a different body; "
                    "raw objects are never overwritten"
                ) from None
            created = False
        return PutResult(key, digest.hexdigest(), len(body), created)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    def list(self, prefix: str) -> list[str]:
        return sorted(obj.key for obj in self.scan(prefix))

    def copy(self, src: str, dst: str) -> None:
        self.client.copy_object(
            Bucket=self.bucket,
            Key=self._key(dst),
            CopySource={"Bucket": self.bucket, "Key": self._key(src)},
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def scan(self, prefix: str) -> Iterator[StoredObject]:
        """Objects under ``prefix``, one ``ListObjectsV2`` page (1,000 keys) at a time.

        Args:
            prefix: a key prefix.

        Yields:
            Each object with its size and modification time, in key order.
        """
        paginator = self.client.get_paginator("list_objects_v2")
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=full, PaginationConfig={"PageSize": DELETE_BATCH}
        )
        for page in pages:
            for obj in page.get("Contents", []):
                when = obj["LastModified"].astimezone(UTC)
                yield StoredObject(self._unkey(obj["Key"]), int(obj["Size"]), when)

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete objects with ``DeleteObjects``, :data:`DELETE_BATCH` keys per request.

        Args:
            keys: object keys (missing ones are not an error in S3).

        Returns:
            How many keys were named.

        Raises:
            StoreError: S3 refused some deletions; the message names the first key and code.
        """
        for at in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": self._key(k)} for k in keys[at : at + DELETE_BATCH]]
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise StoreError(
                    f"store {self.url}: {len(errors)} deletions refused, first "
                    f"{self._unkey(str(first.get('Key', '')))}: {first.get('Code', '?')}"
                )
        return len(keys)


def _endpoint_label(url: str | None) -> str:
    """The endpoint as scheme://host[:port], without any user info or path."""
    parts = urlsplit(url or "")
    if not parts.hostname:
        return "the S3 endpoint"
    port = f":{parts.port}" if parts.port else ""
    return f"the S3 endpoint {parts.scheme}://{parts.hostname}{port}"


def _botocore_advice(exc: Exception, endpoint: str) -> str:
    from botocore.exceptions import (
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or run with an IAM role"
        )
    if isinstance(exc, NoRegionError):
        return "no AWS region: set AWS_DEFAULT_REGION"
    if isinstance(exc, ConnectionError | HTTPClientError):
        return (
            f"{endpoint} cannot be reached ({type(exc).__name__}): check AWS_ENDPOINT_URL "
            "and the network"
        )
    return f"S3 cannot be used ({type(exc).__name__}): check the AWS settings"


def _client_error_advice(exc: Any) -> str:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(error.get("Code", ""))
    if status == 404 or code in ("404", "NoSuchBucket"):
        return "the bucket does not exist: create it or fix the bucket name"
    if status == 403 or code in ("403", "AccessDenied", "InvalidAccessKeyId"):
        return (
            "access denied: check the AWS credentials and that they allow s3:ListBucket on "
            "the bucket"
        )
    return f"S3 answered HTTP {status} {code}: check the AWS settings"
