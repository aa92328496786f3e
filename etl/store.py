"""One object-store interface, two backends: S3 (boto3) and a local directory.

Keys are the same in both (``raw/...``, ``staging/...``, ``curated/...``), so the pipeline does not
care where it writes. ``open_store("s3://bucket/prefix")`` or ``open_store("/some/dir")``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator


class ObjectExistsError(Exception):
    """A write-once key already holds a different body."""


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


def sha256_hex(body: bytes) -> str:
    """Hex SHA-256 of ``body``."""
    return hashlib.sha256(body).hexdigest()


def open_store(url: str) -> Store:
    """Open the store named by ``url``.

    Args:
        url: ``s3://bucket[/prefix]`` for S3 (credentials from the default chain, endpoint from
            ``AWS_ENDPOINT_URL``), or a local directory path (``file://`` prefix optional).

    Returns:
        A store whose keys are relative to the prefix or directory.
    """
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"store URL {url!r} names no bucket")
        return S3Store(bucket, prefix.strip("/"))
    path = url[len("file://") :] if url.startswith("file://") else url
    return LocalStore(Path(path))


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

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def _write_temp(self, path: Path, body: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        return Path(tmp)

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        os.replace(self._write_temp(path, body), path)

    def put_file(
        self, key: str, path: Path, content_type: str = "application/octet-stream"
    ) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        os.close(fd)
        try:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def download(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._path(key), "rb") as src, open(path, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)

    def put_once(
        self, key: str, body: bytes, content_type: str = "application/octet-stream"
    ) -> PutResult:
        path = self._path(key)
        digest = sha256_hex(body)
        tmp = self._write_temp(path, body)
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
            os.unlink(tmp)
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
        for p in start.rglob("*"):
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


class S3Store:
    """An S3 bucket (or MinIO, LocalStack, moto) under an optional key prefix."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        if client is None:
            import boto3

            # endpoint_url comes from AWS_ENDPOINT_URL through boto3's own configuration chain.
            client = boto3.client("s3")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.namespace = f"s3://{bucket}"

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

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                yield self._unkey(obj["Key"])

    def list(self, prefix: str) -> list[str]:
        return sorted(self._iter_keys(prefix))

    def copy(self, src: str, dst: str) -> None:
        self.client.copy_object(
            Bucket=self.bucket,
            Key=self._key(dst),
            CopySource={"Bucket": self.bucket, "Key": self._key(src)},
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
