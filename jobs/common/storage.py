"""Small text objects (run summaries, reports) on local disk or S3."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse


def write_text(uri: str, text: str) -> None:
    """Write ``text`` to a local path or an ``s3://bucket/key`` (atomic locally)."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        import boto3

        boto3.client("s3").put_object(
            Bucket=parsed.netloc, Key=parsed.path.lstrip("/"), Body=text.encode("utf-8")
        )
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def read_text(uri: str) -> str:
    """Read a local path or an ``s3://bucket/key``."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        import boto3

        body = boto3.client("s3").get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
        return str(body["Body"].read().decode("utf-8"))
    return Path(uri).read_text(encoding="utf-8")


def list_uris(prefix: str) -> list[str]:
    """Objects (files) whose location starts with ``prefix`` (local or S3), sorted."""
    parsed = urlparse(prefix)
    if parsed.scheme == "s3":
        import boto3

        pages = (
            boto3.client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=parsed.netloc, Prefix=parsed.path.lstrip("/"))
        )
        return sorted(
            f"s3://{parsed.netloc}/{obj['Key']}"
            for page in pages
            for obj in page.get("Contents", [])
        )
    base = Path(prefix)
    folder, stem = (base, "") if prefix.endswith("/") else (base.parent, base.name)
    if not folder.is_dir():
        return []
    return sorted(
        str(p) for p in folder.rglob("*") if p.is_file() and str(p).startswith(str(folder / stem))
    )
