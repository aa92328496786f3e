"""Both store backends behave the same: local directory and S3 (moto's in-process mock, no socket)."""

from __future__ import annotations

import base64
import errno
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from etl.config import StoreLocation, parse_store_url
from etl.errors import ObjectExistsError, StoreError
from etl.storage.store import LocalStore, S3Store, Store, open_store, sha256_hex

if TYPE_CHECKING:
    from collections.abc import Iterator

BUCKET = "tweetpipe-unit"


@pytest.fixture
def s3_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    client = request.getfixturevalue("s3_client")
    return S3Store(BUCKET, "some/prefix", client=client)


def test_put_get_exists_delete(store: Store) -> None:
    store.put("raw/a/b.json", b'{"x": 1}')

    assert store.get("raw/a/b.json") == b'{"x": 1}'
    assert store.exists("raw/a/b.json") and not store.exists("raw/a/c.json")
    store.delete("raw/a/b.json")
    assert not store.exists("raw/a/b.json")
    store.delete("raw/a/b.json")  # deleting an absent key is not an error


def test_put_replaces_a_mutable_object(store: Store) -> None:
    store.put("state/w.json", b"1")
    store.put("state/w.json", b"2")

    assert store.get("state/w.json") == b"2"


def test_list_is_sorted_recursive_and_prefix_filtered(store: Store) -> None:
    for key in ("raw/s=b/p-2.json", "raw/s=a/p-1.json", "raw/s=ab/x.json", "state/w.json"):
        store.put(key, b"{}")

    assert store.list("raw/") == ["raw/s=a/p-1.json", "raw/s=ab/x.json", "raw/s=b/p-2.json"]
    assert store.list("raw/s=a") == ["raw/s=a/p-1.json", "raw/s=ab/x.json"]
    assert store.list("raw/s=a/") == ["raw/s=a/p-1.json"]
    assert store.list("nothing/") == []
    assert len(store.list("")) == 4


def test_put_once_creates_then_finds_identical(store: Store) -> None:
    first = store.put_once("raw/p.json", b"body")
    again = store.put_once("raw/p.json", b"body")

    assert first.created and not again.created
    assert first.sha256 == again.sha256 == hashlib.sha256(b"body").hexdigest()
    assert first.size == 4 and first.key == "raw/p.json"


def test_put_once_refuses_a_different_body_and_keeps_the_original(store: Store) -> None:
    store.put_once("raw/p.json", b"original")

    with pytest.raises(ObjectExistsError, match=r"raw/p\.json already exists with a different"):
        store.put_once("raw/p.json", b"changed")

    assert store.get("raw/p.json") == b"original"


def test_put_file_download_and_copy(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"\x00\x01" * 1000)
    store.put_file("curated/x.bin", src)
    store.copy("curated/x.bin", "curated/y.bin")
    out = tmp_path / "deep" / "out.bin"

    store.download("curated/y.bin", out)

    assert out.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "./a", "a/."])
def test_invalid_keys_are_refused(store: Store, key: str) -> None:
    with pytest.raises(ValueError, match="invalid store key"):
        store.put(key, b"x")


def test_both_backends_produce_the_same_keys(tmp_path: Path, s3_client: Any) -> None:
    stores: list[Store] = [LocalStore(tmp_path / "s"), S3Store(BUCKET, "p", client=s3_client)]
    for s in stores:
        s.put_once("raw/source=a/page-00001.json", b"1")
        s.put("state/watermarks/a.json", b"2")

    assert stores[0].list("") == stores[1].list("")


def test_s3_put_once_is_conditional_and_checksummed(s3_client: Any) -> None:
    sent: list[dict[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        sent.append({k.lower(): _text(v) for k, v in request.headers.items()})

    s3_client.meta.events.register("before-send.s3.PutObject", capture)
    store = S3Store(BUCKET, "", client=s3_client)

    store.put_once("raw/p.json", b"payload")

    headers = sent[0]
    assert headers["if-none-match"] == "*"
    expected = base64.b64encode(hashlib.sha256(b"payload").digest()).decode()
    assert headers["x-amz-checksum-sha256"] == expected


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_local_put_once_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_once("raw/p.json", b"a")
    store.put_once("raw/p.json", b"a")
    with pytest.raises(ObjectExistsError):
        store.put_once("raw/p.json", b"b")

    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["p.json"]


def test_open_store_parses_urls(tmp_path: Path, s3_client: Any) -> None:
    s3 = open_store(f"s3://{BUCKET}/a/b/")
    local = open_store(f"file://{tmp_path}")

    assert isinstance(s3, S3Store) and s3.bucket == BUCKET and s3.prefix == "a/b"
    assert s3.url == f"s3://{BUCKET}/a/b" and s3.namespace == f"s3://{BUCKET}"
    assert isinstance(local, LocalStore) and local.root == tmp_path.resolve()
    assert isinstance(open_store(str(tmp_path / "rel")), LocalStore)
    with pytest.raises(ValueError, match="names no bucket"):
        open_store("s3://")


def test_sha256_hex() -> None:
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# --- failures leave nothing behind --------------------------------------------------------------
class _FullDisk:
    """A file object whose writes fail as on a full disk, after the file was created."""

    def __init__(self, fd: int, *args: Any, **kwargs: Any) -> None:
        self.fd = fd

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("operation", ["put", "put_once", "put_file", "copy", "download"])
def test_a_full_disk_leaves_no_temporary_file(
    operation: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("raw/src.json", b"{}")
    (tmp_path / "local.json").write_bytes(b"{}")
    monkeypatch.setattr("etl.storage.store.os.fdopen", _FullDisk)
    calls = {
        "put": lambda: store.put("raw/a/b.json", b"body"),
        "put_once": lambda: store.put_once("raw/a/b.json", b"body"),
        "put_file": lambda: store.put_file("raw/a/b.json", tmp_path / "local.json"),
        "copy": lambda: store.copy("raw/src.json", "raw/a/b.json"),
        "download": lambda: store.download("raw/src.json", tmp_path / "out" / "b.json"),
    }

    with pytest.raises(OSError) as err:
        calls[operation]()

    assert err.value.errno == errno.ENOSPC
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []
    assert not (tmp_path / "store" / "raw" / "a" / "b.json").exists()
    assert not (tmp_path / "out" / "b.json").exists()


def test_a_failed_rename_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)

    def refuse(src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr("etl.storage.store.os.replace", refuse)
    with pytest.raises(OSError):
        store.put("state/w.json", b"1")

    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []


# --- store URLs: checked, never quoted when they could hold a credential -----------------------
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/p", "carries credentials"),
        ("s3://wJalrXUtnFEMI@bucket", "carries credentials"),
        ("file://user:wJalrXUtnFEMI@host/dir", "carries credentials"),
        ("https://user:wJalrXUtnFEMI@host/dir", "carries credentials"),
        ("s3://AKIAEXAMPLE:wJalrXUtnFEMI/p", "bucket name is not valid"),
        ("s3://bucket/p?X-Amz-Signature=wJalrXUtnFEMI", "takes no query"),
        ("ftp://wJalrXUtnFEMI/dir", "scheme ftp:// is not supported"),
        ("file://wJalrXUtnFEMI/dir", "names no host"),
        ("s3://bucket/a/../wJalrXUtnFEMI", "'..' part"),
        ("/tmp/a\nwJalrXUtnFEMI", "control characters"),
        ("  ", "is empty"),
    ],
)
def test_malformed_store_urls_are_refused_without_quoting(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as err:
        parse_store_url(url)

    assert "wJalrXUtnFEMI" not in str(err.value)
    assert isinstance(err.value, ValueError)


def test_store_urls_say_where_they_point(tmp_path: Path) -> None:
    assert parse_store_url("s3://my-bucket.eu/a/b/") == StoreLocation("s3", "my-bucket.eu", "a/b")
    assert parse_store_url("S3://bucket") == StoreLocation("s3", "bucket", "")
    assert parse_store_url(f"file://{tmp_path}") == StoreLocation("local", path=tmp_path)
    assert parse_store_url("file://localhost/x") == StoreLocation("local", path=Path("/x"))
    assert parse_store_url("rel/user@host") == StoreLocation("local", path=Path("rel/user@host"))


def test_a_local_store_is_checked_when_asked(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")

    with pytest.raises(StoreError, match="is not a directory"):
        open_store(str(tmp_path / "a-file"), check=True)
    with pytest.raises(StoreError, match="cannot be created"):
        open_store(str(tmp_path / "a-file" / "below"), check=True)
    with pytest.raises(StoreError, match=r"cannot be created \(No such file or directory\)"):
        open_store("/proc/tweetpipe-store", check=True)
    store = open_store(str(tmp_path / "new" / "dir"), check=True)
    assert (tmp_path / "new" / "dir").is_dir() and isinstance(store, LocalStore)
