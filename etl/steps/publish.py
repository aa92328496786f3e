"""Write–audit–publish: curated candidates go to ``staging/``, are audited, then published.

Keys derive only from the source and the data interval, so a rerun or a backfill of the same
interval writes the same objects: ``staging/`` and ``quarantine/`` are rewritten, and ``curated/`` is
replaced by a byte-identical file. Nothing but :func:`publish` ever writes under ``curated/``, and it
publishes only the exact bytes the audit saw (checked by SHA-256), so after a failed audit the
previous good version of the partition stays as it was. The partitions and their keys are
:class:`etl.storage.keys.Partition`.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.errors import StagingChangedError
from etl.storage.keys import CURATED_FILE

if TYPE_CHECKING:
    from etl.storage.keys import Partition
    from etl.storage.store import Store

_CSV = "text/csv; charset=utf-8"
_JSONL = "application/x-ndjson; charset=utf-8"


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
