"""Where a published dataset lives: a local folder (the embedded default) or an S3 prefix.

A store holds the published part of an output, ``data/…`` and ``manifests/…``, under keys
relative to its root. What a run needs before the commit (staging, the warehouse, dbt's
artifacts, reports) stays in a local folder (``DatasetPaths.root``).

The commit needs three operations that cannot be half done, and each store gives them:

- ``publish_file``: a staged file appears under its (unique) key whole, or not at all;
- ``create``: a new object appears whole, and only if nothing has that key yet
  (a folder: link(2); S3: ``PUT`` with ``If-None-Match: *``);
- ``swap``: ``manifests/current.json`` is replaced only if it is still the version the run
  read (a folder: rename(2) under the output lock, after checking the version; S3: ``PUT``
  with ``If-Match: <etag>``, or ``If-None-Match: *`` when there was none). Two committers can
  never both win: the loser gets CommitConflictError and has changed nothing readers follow.

S3 is reached with boto3 and the standard AWS settings (``AWS_ENDPOINT_URL``,
``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, …).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from batch_processor.durable import create_exclusive, fsync_dir, fsync_file, replace_atomic
from batch_processor.errors import DatasetStateError, RunFailedError

S3_SCHEME = "s3://"


class CommitConflictError(RunFailedError):
    """Another writer changed the dataset first: this commit did not happen (exit code 1)."""


class DatasetStore(Protocol):
    location: str  # the root, for messages and for readers: a folder or s3://bucket/prefix

    def uri(self, key: str) -> str:
        """The key as a path or URI that a reader (DuckDB, pyarrow) opens."""
        ...

    def read(self, key: str) -> tuple[bytes, str] | None:
        """The object's body and version (compared by ``swap``), or None if absent."""
        ...

    def sizes(self, prefix: str) -> dict[str, int]:
        """Every key under ``prefix`` (``data/``, ``manifests/``) with its size in bytes."""
        ...

    def publish_file(self, key: str, source: Path) -> None:
        """Make the local ``source`` the object ``key``, whole; ``source`` is consumed."""
        ...

    def download(self, key: str, target: Path) -> bool:
        """Copy the object ``key`` to the local file ``target``, streamed; False if absent."""
        ...

    def flush(self) -> None:
        """Make the files published so far durable (before the manifest names them)."""
        ...

    def create(self, key: str, body: bytes) -> None:
        """A new object; CommitConflictError if ``key`` exists."""
        ...

    def swap(self, key: str, body: bytes, expected: str | None) -> None:
        """Replace ``key`` if its version is still ``expected`` (None: it must not exist);
        else CommitConflictError."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    def put(self, key: str, body: bytes) -> None:
        """Write ``key`` whole, replacing it (for reports, never for the commit)."""
        ...


def is_remote(output: str | Path) -> bool:
    return str(output).startswith(S3_SCHEME)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, ``some/prefix``); the prefix may be empty."""
    bucket, _, prefix = uri.removeprefix(S3_SCHEME).partition("/")
    prefix = prefix.strip("/")
    if not bucket or any(part in ("", ".", "..") for part in prefix.split("/") if prefix):
        raise DatasetStateError(f"{uri}: expected s3://BUCKET[/PREFIX] with no empty, . or .. part")
    return bucket, prefix


@dataclass
class LocalStore:
    """The published dataset in the output folder itself. Versions are content hashes; the
    output lock makes the check-then-rename of ``swap`` safe (one writer per folder)."""

    root: Path

    def __post_init__(self) -> None:
        self.location = str(self.root)
        self._new_dirs: set[Path] = set()

    def uri(self, key: str) -> str:
        return str(self.root / key)

    def read(self, key: str) -> tuple[bytes, str] | None:
        try:
            body = (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        return body, hashlib.sha256(body).hexdigest()

    def sizes(self, prefix: str) -> dict[str, int]:
        base = self.root / prefix
        if not base.is_dir():
            return {}
        return {
            path.relative_to(self.root).as_posix(): path.stat().st_size
            for path in base.rglob("*")
            if path.is_file()
        }

    def download(self, key: str, target: Path) -> bool:
        try:
            shutil.copyfile(self.root / key, target)
        except FileNotFoundError:
            return False
        return True

    def publish_file(self, key: str, source: Path) -> None:
        fsync_file(source)
        target = self.root / key
        folder = target.parent
        while folder != self.root and not folder.exists():
            self._new_dirs.add(folder)
            folder = folder.parent
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)  # rename(2), same filesystem: whole or not at all
        self._new_dirs.add(target.parent)

    def flush(self) -> None:
        folders = self._new_dirs | {d.parent for d in self._new_dirs}
        for folder in sorted(folders, key=lambda d: -len(d.parts)):
            fsync_dir(folder)  # deepest first: files, then the folders that name them
        self._new_dirs.clear()

    def create(self, key: str, body: bytes) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            create_exclusive(target, body)
        except FileExistsError as exc:
            raise CommitConflictError(f"{target} exists already: another commit made it") from exc

    def swap(self, key: str, body: bytes, expected: str | None) -> None:
        found = self.read(key)
        if (found[1] if found else None) != expected:
            raise CommitConflictError(
                f"{self.root / key} changed since this run read it: another commit came first"
            )
        replace_atomic(self.root / key, body)

    def put(self, key: str, body: bytes) -> None:
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        replace_atomic(self.root / key, body)

    def delete(self, key: str) -> None:
        target = self.root / key
        target.unlink(missing_ok=True)
        self._new_dirs.add(target.parent)


class S3Store:
    """The published dataset under ``s3://bucket/prefix``, with conditional writes."""

    def __init__(self, uri: str, client: Any = None) -> None:
        self.bucket, self.prefix = split_s3_uri(uri)
        self.location = f"{S3_SCHEME}{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        if client is None:
            import boto3

            client = boto3.client("s3")
        self._s3 = client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self._key(key)}"

    def _call(self, what: str, key: str, call: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call(Bucket=self.bucket, Key=self._key(key), **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise CommitConflictError(
                    f"{self.uri(key)}: another writer changed it first ({code})"
                ) from exc
            if code in ("NoSuchKey", "404") and what == "read":
                return None
            raise DatasetStateError(f"{self.uri(key)}: S3 {what} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise DatasetStateError(f"{self.uri(key)}: S3 {what} failed: {exc}") from exc

    def read(self, key: str) -> tuple[bytes, str] | None:
        response = self._call("read", key, self._s3.get_object)
        if response is None:
            return None
        return response["Body"].read(), str(response["ETag"])

    def sizes(self, prefix: str) -> dict[str, int]:
        from botocore.exceptions import BotoCoreError, ClientError

        root = self._key("")
        found: dict[str, int] = {}
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found[item["Key"].removeprefix(root)] = int(item["Size"])
        except (BotoCoreError, ClientError) as exc:
            raise DatasetStateError(f"{self.uri(prefix)}: S3 listing failed: {exc}") from exc
        return found

    def download(self, key: str, target: Path) -> bool:
        response = self._call("read", key, self._s3.get_object)
        if response is None:
            return False
        with target.open("wb") as out:
            for chunk in response["Body"].iter_chunks(1 << 20):
                out.write(chunk)
        return True

    def publish_file(self, key: str, source: Path) -> None:
        with source.open("rb") as body:  # one PUT: a staged file is at most MAX_FILE_SIZE
            self._call("upload", key, self._s3.put_object, Body=body, IfNoneMatch="*")
        source.unlink()

    def flush(self) -> None:
        """An acknowledged PUT is durable."""

    def create(self, key: str, body: bytes) -> None:
        self._call("create", key, self._s3.put_object, Body=body, IfNoneMatch="*")

    def swap(self, key: str, body: bytes, expected: str | None) -> None:
        condition = {"IfMatch": expected} if expected is not None else {"IfNoneMatch": "*"}
        self._call("swap", key, self._s3.put_object, Body=body, **condition)

    def put(self, key: str, body: bytes) -> None:
        self._call("put", key, self._s3.put_object, Body=body)

    def delete(self, key: str) -> None:
        self._call("delete", key, self._s3.delete_object)


def open_store(output: str | Path) -> DatasetStore:
    """The store an ``--output`` names: ``s3://bucket/prefix`` or a local folder."""
    if is_remote(output):
        return S3Store(str(output))
    return LocalStore(Path(output))


def default_work_dir(output: str, base: Path) -> Path:
    """The local folder of an ``s3://`` output's warehouse, staging, dbt artifacts and
    reports: ``<base>/s3/<bucket>/<prefix>``."""
    bucket, prefix = split_s3_uri(output)
    return base / "s3" / bucket / prefix if prefix else base / "s3" / bucket
