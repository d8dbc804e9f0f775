"""Small objects (run summaries, reports, lineage events, file drops) on local disk or S3.

Every S3 spelling (``s3://``, ``s3a://``, ``s3n://``) is the same object store: a
location that is not local never falls through to a folder named after its scheme.
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jobs.common.paths import canonical_uri


def _s3_location(uri: str) -> tuple[str, str] | None:
    """(bucket, key) of an S3 location, None for a local path.

    Raises:
        ValueError: a URI of another scheme (only local paths and S3 are stores here).
    """
    parsed = urlparse(canonical_uri(uri))
    if parsed.scheme == "s3":
        return parsed.netloc, parsed.path.lstrip("/")
    if parsed.scheme in ("", "file"):
        return None
    raise ValueError(f"unsupported storage location '{uri}': expected a local path or s3://")


def _local(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(parsed.path if parsed.scheme == "file" else uri)


# What a client is built from: a new endpoint or identity (a test's moto server) gets
# a new client, the same one reuses it (building a boto3 client costs ~50 ms).
_CLIENT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID")


def _s3() -> Any:
    return _s3_client(tuple(os.environ.get(name) for name in _CLIENT_ENV))


@cache
def _s3_client(_env: tuple[str | None, ...]) -> Any:
    import boto3

    return boto3.client("s3")


def write_text(uri: str, text: str) -> None:
    """Write ``text`` to a local path or an S3 object (atomic in both)."""
    s3 = _s3_location(uri)
    if s3 is not None:
        _s3().put_object(Bucket=s3[0], Key=s3[1], Body=text.encode("utf-8"))
        return
    path = _local(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def copy_file(source: Path, uri: str) -> None:
    """Land the local file ``source`` at ``uri`` atomically (a reader never sees part of it).

    Locally it is written under a dot-name that file globs skip, then renamed; an S3
    object appears whole when its upload completes.
    """
    s3 = _s3_location(uri)
    if s3 is not None:
        _s3().upload_file(str(source), s3[0], s3[1])
        return
    target = _local(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    partial.replace(target)


def read_text(uri: str) -> str:
    """Read a local path or an S3 object."""
    s3 = _s3_location(uri)
    if s3 is not None:
        body = _s3().get_object(Bucket=s3[0], Key=s3[1])
        return str(body["Body"].read().decode("utf-8"))
    return _local(uri).read_text(encoding="utf-8")


def list_uris(prefix: str) -> list[str]:
    """Objects (files) whose location starts with ``prefix`` (local or S3), sorted.

    S3 locations are returned in their canonical ``s3://`` spelling.
    """
    s3 = _s3_location(prefix)
    if s3 is not None:
        bucket, key = s3
        pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        return sorted(
            f"s3://{bucket}/{obj['Key']}" for page in pages for obj in page.get("Contents", [])
        )
    base = _local(prefix)
    folder, stem = (base, "") if prefix.endswith("/") else (base.parent, base.name)
    if not folder.is_dir():
        return []
    return sorted(
        str(p) for p in folder.rglob("*") if p.is_file() and str(p).startswith(str(folder / stem))
    )


def list_folders(prefix: str) -> list[str]:
    """The immediate sub-folders of ``prefix`` (local folders or S3 common prefixes), sorted."""
    s3 = _s3_location(prefix)
    if s3 is not None:
        bucket, key = s3
        key = f"{key.rstrip('/')}/" if key else ""
        pages = (
            _s3()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=key, Delimiter="/")
        )
        return sorted(
            f"s3://{bucket}/{common['Prefix'].rstrip('/')}"
            for page in pages
            for common in page.get("CommonPrefixes", [])
        )
    folder = _local(prefix)
    return sorted(str(p) for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
