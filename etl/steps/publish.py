"""Write–audit–publish: curated candidates go to ``staging/``, are audited, then published.

Keys derive only from the source and the data interval, so a rerun or a backfill of the same
interval writes the same objects: ``staging/`` and ``quarantine/`` are rewritten, and ``curated/`` is
replaced by a byte-identical file. Nothing but :func:`publish` ever writes under ``curated/``, and it
publishes only the exact bytes the audit saw (checked by SHA-256), so after a failed audit the
previous good version of the partition stays as it was.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.errors import StagingChangedError

if TYPE_CHECKING:
    from etl.storage.store import Store

CURATED_FILE = "tweets.csv"
QUARANTINE_FILE = "rejected.jsonl"
_CSV = "text/csv; charset=utf-8"
_JSONL = "application/x-ndjson; charset=utf-8"
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Partition:
    """One source over one data interval: the unit that is staged, audited and published.

    Attributes:
        source: the source's slug (safe in a key).
        start: interval start (inclusive), UTC.
        end: interval end (exclusive), UTC.
    """

    source: str
    start: datetime
    end: datetime

    @property
    def interval(self) -> str:
        """The interval as it appears in keys, e.g. ``20240301T000000Z_20240302T000000Z``."""
        return f"{self.start.strftime(_STAMP)}_{self.end.strftime(_STAMP)}"

    @property
    def _path(self) -> str:
        return f"source={self.source}/interval={self.interval}"

    @property
    def staging_key(self) -> str:
        """Where the curated candidate waits for its audit."""
        return f"staging/{self._path}/{CURATED_FILE}"

    @property
    def curated_key(self) -> str:
        """Where the audited CSV is published."""
        return f"curated/{self._path}/{CURATED_FILE}"

    @property
    def quarantine_key(self) -> str:
        """Where the rows the gate rejected are kept, with their reasons."""
        return f"quarantine/{self._path}/{QUARANTINE_FILE}"


@dataclass(frozen=True)
class StagedCandidate:
    """What :func:`stage` wrote.

    Attributes:
        staging_key: the candidate CSV.
        quarantine_key: the rejected rows.
        sha256: hex digest of the candidate; :func:`publish` refuses any other bytes.
        size: candidate length in bytes.
        quarantine_size: length of the rejected rows' file in bytes.
    """

    staging_key: str
    quarantine_key: str
    sha256: str
    size: int
    quarantine_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (for XCom)."""
        return asdict(self)


@dataclass(frozen=True)
class Published:
    """What :func:`publish` did.

    Attributes:
        curated_key: the published CSV.
        sha256: hex digest of the published bytes.
        size: length in bytes.
        replaced: True when the partition held a previous version (a rerun or a backfill).
        unchanged: True when that previous version had the same bytes.
    """

    curated_key: str
    sha256: str
    size: int
    replaced: bool
    unchanged: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (for XCom)."""
        return asdict(self)


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"interval {name} {value.isoformat()} has no time zone; give it in UTC")
    return value.astimezone(UTC)


def partition_for(source: str, start: datetime, end: datetime) -> Partition:
    """The partition of ``source`` over ``[start, end)``.

    Args:
        source: the source's slug; it becomes part of the keys.
        start: interval start, time-zone aware.
        end: interval end, time-zone aware, after ``start``.

    Returns:
        The partition, with the interval normalised to UTC whole seconds.

    Raises:
        ValueError: the slug is unusable in a key, a bound is naive, or the interval is empty.
    """
    if not source or any(c in source for c in "/= ") or source in (".", ".."):
        raise ValueError(f"source slug {source!r} cannot be used in a key")
    lo, hi = _utc(start, "start"), _utc(end, "end")
    if lo.microsecond or hi.microsecond:
        raise ValueError(f"interval {lo.isoformat()}..{hi.isoformat()} is not in whole seconds")
    if hi - lo < timedelta(seconds=1):
        raise ValueError(f"interval {lo.isoformat()}..{hi.isoformat()} is empty")
    return Partition(source, lo, hi)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def stage(
    store: Store, partition: Partition, csv_path: Path, quarantine_path: Path
) -> StagedCandidate:
    """Write a curated candidate and its rejected rows (the "write" of write–audit–publish).

    Args:
        store: the object store.
        partition: source and interval the files belong to.
        csv_path: the candidate CSV on local disk.
        quarantine_path: the rejected rows (JSON lines) on local disk; written even when empty,
            so every partition shows what it lost.

    Returns:
        The staged keys and the candidate's digest, which the audit and :func:`publish` carry.
    """
    store.put_file(partition.quarantine_key, quarantine_path, _JSONL)
    store.put_file(partition.staging_key, csv_path, _CSV)
    return StagedCandidate(
        staging_key=partition.staging_key,
        quarantine_key=partition.quarantine_key,
        sha256=_sha256_file(csv_path),
        size=csv_path.stat().st_size,
        quarantine_size=quarantine_path.stat().st_size,
    )


def _previous_digest(store: Store, key: str, workdir: Path) -> str | None:
    if not store.exists(key):
        return None
    path = workdir / "previous"
    store.download(key, path)
    return _sha256_file(path)


def publish(store: Store, partition: Partition, audited_sha256: str) -> Published:
    """Copy the audited candidate from ``staging/`` to ``curated/`` (the "publish" step).

    Call it only after the audit passed. The bytes are read once into a local file, checked
    against the digest the audit saw, and that same file is uploaded, so nothing the audit did
    not see can reach ``curated/`` even if ``staging/`` changes meanwhile. The upload replaces the
    object in one step (S3 PUT, or rename on a local directory): readers see the old version or
    the new one, never a mix.

    Args:
        store: the object store.
        partition: source and interval to publish.
        audited_sha256: hex SHA-256 of the candidate the audit passed.

    Returns:
        What was published and whether it replaced a previous version.

    Raises:
        StagingChangedError: the staged bytes differ from the audited ones; ``curated/`` is
            untouched.
    """
    with tempfile.TemporaryDirectory(prefix="tweetpipe-publish-") as tmp:
        workdir = Path(tmp)
        candidate = workdir / CURATED_FILE
        store.download(partition.staging_key, candidate)
        digest = _sha256_file(candidate)
        if digest != audited_sha256:
            raise StagingChangedError(
                f"{partition.staging_key} has sha256 {digest}, but the audit passed "
                f"{audited_sha256}; not publishing, {partition.curated_key} is unchanged"
            )
        previous = _previous_digest(store, partition.curated_key, workdir)
        store.put_file(partition.curated_key, candidate, _CSV)
        return Published(
            curated_key=partition.curated_key,
            sha256=digest,
            size=candidate.stat().st_size,
            replaced=previous is not None,
            unchanged=previous == digest,
        )
