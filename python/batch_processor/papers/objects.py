"""Open an input object (``s3://bucket/key`` or a local path) as a decompressed byte stream.

S3 objects are read with boto3, which takes its endpoint, region and credentials from the
standard AWS settings (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, …). The
body is streamed: nothing reads a whole object into memory. Compression is recognised by the
first bytes (gzip, zstd, or none), not by the key's suffix.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import zstandard
from botocore.exceptions import BotoCoreError, ClientError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20


class ObjectError(Exception):
    """The object cannot be read (missing, unreachable, truncated, corrupt)."""


@dataclass(frozen=True)
class ObjectRef:
    """An input object: ``s3://bucket/key`` or a local file."""

    uri: str

    @classmethod
    def s3(cls, bucket: str, key: str) -> ObjectRef:
        return cls(f"s3://{bucket}/{key}")

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    @property
    def bucket_and_key(self) -> tuple[str, str]:
        bucket, _, key = self.uri.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise ObjectError(f"{self.uri}: expected s3://BUCKET/KEY")
        return bucket, key

    @property
    def key(self) -> str:
        return self.bucket_and_key[1] if self.is_s3 else self.uri


class _Raw(io.RawIOBase):
    """Any object with ``read(n)`` as a raw stream, so io.BufferedReader can peek at it;
    decompression errors surface as ObjectError with the object's name."""

    def __init__(self, source: Any, uri: str) -> None:
        self._source = source
        self._uri = uri

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._source.read(len(buffer))
        except EOFError as error:
            raise ObjectError(f"{self._uri}: truncated compressed data ({error})") from error
        except (OSError, zlib.error, zstandard.ZstdError) as error:
            raise ObjectError(f"{self._uri}: corrupt compressed data ({error})") from error
        except (BotoCoreError, ClientError) as error:
            raise ObjectError(f"{self._uri}: reading from S3 failed ({error})") from error
        buffer[: len(data)] = data
        return len(data)


def s3_client() -> Any:
    return boto3.client("s3")


@contextmanager
def _open_body(ref: ObjectRef) -> Iterator[Any]:
    if not ref.is_s3:
        path = Path(ref.uri)
        if not path.is_file():
            raise ObjectError(f"{ref.uri}: no such file")
        with path.open("rb") as handle:
            yield handle
        return
    bucket, key = ref.bucket_and_key
    try:
        response = s3_client().get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in {"NoSuchKey", "404", "NotFound"}:
            raise ObjectError(f"{ref.uri}: no such key") from error
        if code == "NoSuchBucket":
            raise ObjectError(f"{ref.uri}: no such bucket") from error
        raise ObjectError(f"{ref.uri}: {code or 'error'}: {error}") from error
    except BotoCoreError as error:
        raise ObjectError(f"{ref.uri}: cannot reach S3: {error}") from error
    body = response["Body"]
    try:
        yield body
    finally:
        body.close()


@contextmanager
def open_decompressed(ref: ObjectRef) -> Iterator[tuple[io.BufferedReader[Any], str]]:
    """The object's decompressed bytes as a buffered stream (which can ``peek``), and the
    compression that was found: ``gzip``, ``zstd`` or ``none``."""
    with _open_body(ref) as body:
        raw = io.BufferedReader(_Raw(body, ref.uri), CHUNK)
        head = raw.peek(4)[:4]
        if head.startswith(GZIP_MAGIC):
            inner: Any = gzip.GzipFile(fileobj=raw, mode="rb")
            compression = "gzip"
        elif head.startswith(ZSTD_MAGIC):
            inner = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            compression = "zstd"
        else:
            yield raw, "none"
            return
        yield io.BufferedReader(_Raw(inner, ref.uri), CHUNK), compression
