"""The lake's AWS on this machine: S3 and the Delta log store's DynamoDB table on moto.

For ``lakehouse demo --storage s3`` and the tests of the S3 path. One moto server
process serves one state on two loopback ports: plain HTTP for boto3 and S3A, and TLS
for the DynamoDB client of Delta's ``S3DynamoDBLogStore`` (AWS SDK v1, which has no
endpoint option: it speaks https to the host its region metadata names).

A run is pointed at it through configuration only (:func:`lake_environ`: ``LAKEHOUSE__*``
variables, Spark settings in ``spark.extra_conf``): nothing in the jobs knows it is moto.
What the SDK v1 client needs, all JVM-side (facts in docs/adr/0003):

1. ``-Dcom.amazonaws.regions.RegionUtils.fileOverride=<regions.xml>``: region metadata
   mapping ``dynamodb`` in the lake's region to the TLS port;
2. ``-Dcom.amazonaws.sdk.disableCertChecking=true`` (moto's certificate is self-signed);
3. ``awssdk_config_override.json`` on the driver classpath mapping host ``127.0.0.1`` to
   the lake's region for request signing (without it the client signs for us-east-1, and
   moto keeps one DynamoDB per region: the log store would create a table of its own).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.common.config import PROJECT_ROOT
from jobs.common.jars import s3_jars

REGION = "eu-west-1"
ACCESS_KEY = "local-lake"  # moto accepts any key; these are not credentials
SECRET_KEY = "local-lake-secret"
STARTUP_TIMEOUT_S = 60
LATENCY_PATH = "/_local_aws/latency"


@dataclass(frozen=True)
class LocalAws:
    """A running local AWS: its endpoints and the folder of its client-side files."""

    endpoint: str  # http://127.0.0.1:<port>: boto3, S3A
    dynamodb_endpoint: str  # https://127.0.0.1:<port>: the log store's SDK v1 client
    folder: Path
    pid: int

    def environ(self, region: str = REGION) -> dict[str, str]:
        """Process environment for boto3 and the JVM's credential providers."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
        }

    def reset(self) -> None:
        """Forget every bucket, table and object, and any latency set (between tests)."""
        self._post("/moto-api/reset", b"")

    def set_latency(self, method: str, path_pattern: str, seconds: float) -> None:
        """Delay every ``method`` request whose path matches ``path_pattern`` (a regex).

        S3 is path-style here (``/<bucket>/<key>``). The concurrency tests widen the
        window of a commit with it: a PUT of ``_delta_log/<version>.json`` taking a
        second, as a slow S3 request can.
        """
        body = json.dumps({"method": method, "path": path_pattern, "seconds": seconds})
        self._post(LATENCY_PATH, body.encode())

    def _post(self, path: str, body: bytes) -> None:
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint}{path}", data=body, method="POST")
        urllib.request.urlopen(request, timeout=10).close()


@dataclass(frozen=True)
class S3Lake:
    """The buckets and log-store table of a lake named ``prefix``, as Terraform names them."""

    prefix: str = "lakehouse-local"
    region: str = REGION

    @property
    def buckets(self) -> dict[str, str]:
        """Bucket per role: ops (run records, lineage, control), landing and each layer."""
        names = ("artifacts", "landing", "bronze", "silver", "gold")
        return {name: f"{self.prefix}-{name}" for name in names}

    @property
    def root(self) -> str:
        """``storage.root``: run records, lineage and ``_control`` under the ops prefix."""
        return f"s3://{self.buckets['artifacts']}/ops"

    @property
    def layers(self) -> dict[str, str]:
        """``storage.layers``: the landing zone and each lake layer in its own bucket."""
        return {
            name: f"s3://{bucket}" for name, bucket in self.buckets.items() if name != "artifacts"
        }

    @property
    def log_table(self) -> str:
        """``storage.delta_log_table``."""
        return f"{self.prefix}-delta-log"


def create_lake(aws: LocalAws, lake: S3Lake) -> None:
    """Create the lake's buckets and the log store's DynamoDB table (Terraform's schema)."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=lake.region
    )
    s3: Any = session.client("s3", endpoint_url=aws.endpoint)
    for bucket in lake.buckets.values():
        s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": lake.region}
        )
    dynamodb = session.client("dynamodb", endpoint_url=aws.endpoint)
    dynamodb.create_table(  # terraform/modules/delta_log_store
        TableName=lake.log_table,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "tablePath", "KeyType": "HASH"},
            {"AttributeName": "fileName", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "tablePath", "AttributeType": "S"},
            {"AttributeName": "fileName", "AttributeType": "S"},
        ],
    )
    dynamodb.update_time_to_live(
        TableName=lake.log_table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expireTime"},
    )


def lake_environ(
    aws: LocalAws,
    lake: S3Lake,
    *,
    sources: str | None = None,
    jars: list[Path] | None = None,
) -> dict[str, str]:
    """``LAKEHOUSE__*`` variables that put a run's lake on ``lake``, with the log store on.

    Args:
        aws: the running local AWS.
        lake: bucket and table names.
        sources: a local folder for the source systems' stand-ins (the demo's generated
            data), kept off object storage.
        jars: the S3 jars (default: :func:`jobs.common.jars.s3_jars`).

    Raises:
        MissingJarError: the S3 jars are not fetched, or the log store's jar is missing.
    """
    jars = s3_jars(PROJECT_ROOT) if jars is None else jars
    classpath = write_client_files(aws.folder, aws.dynamodb_endpoint, lake.region)
    layers: dict[str, str] = dict(lake.layers)
    if sources:
        layers["sources"] = sources
    conf = {
        "spark.jars": ",".join(str(j) for j in jars),
        "spark.driver.extraClassPath": ":".join([*(str(j) for j in jars), str(classpath)]),
        "spark.driver.extraJavaOptions": (
            f"-Dcom.amazonaws.regions.RegionUtils.fileOverride={aws.folder / 'regions.xml'} "
            "-Dcom.amazonaws.sdk.disableCertChecking=true"
        ),
        # s3:// as EMR spells it; S3A serves it there too (EMR >= 7.10)
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.endpoint": aws.endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": lake.region,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
        ),
        "spark.io.delta.storage.S3DynamoDBLogStore.credentials.provider": (
            "com.amazonaws.auth.EnvironmentVariableCredentialsProvider"
        ),
    }
    return {
        "LAKEHOUSE__STORAGE__ROOT": lake.root,
        "LAKEHOUSE__STORAGE__LAYERS": json.dumps(layers),
        "LAKEHOUSE__STORAGE__DELTA_LOG_TABLE": lake.log_table,
        "LAKEHOUSE__EMR__REGION": lake.region,
        "LAKEHOUSE__SPARK__EXTRA_CONF": json.dumps(conf),
    }


def write_client_files(folder: Path, dynamodb_endpoint: str, region: str) -> Path:
    """``<folder>/regions.xml`` and ``<folder>/classpath/awssdk_config_override.json``.

    What the SDK v1 client of the log store needs to reach ``dynamodb_endpoint`` (see
    the module docstring); returns the classpath folder.
    """
    host = dynamodb_endpoint.removeprefix("https://")
    (folder / "regions.xml").write_text(
        "<XmlFile><Regions><Region>"
        f"<Name>{region}</Name><Domain>amazonaws.com</Domain>"
        "<Endpoint><ServiceName>dynamodb</ServiceName>"
        f"<Http>false</Http><Https>true</Https><Hostname>{host}</Hostname></Endpoint>"
        "</Region></Regions></XmlFile>\n",
        encoding="utf-8",
    )
    classpath = folder / "classpath"
    classpath.mkdir(exist_ok=True)
    override = {
        "hostRegexToRegionMappings": [{"hostNameRegex": r"127\.0\.0\.1", "regionName": region}]
    }
    (classpath / "awssdk_config_override.json").write_text(json.dumps(override), encoding="utf-8")
    return classpath


@contextmanager
def running_local_aws(folder: Path, plugins: Sequence[str] = ()) -> Iterator[LocalAws]:
    """Start the local AWS server process for the block; stop it after."""
    process, aws = start_local_aws(folder, plugins)
    try:
        yield aws
    finally:
        stop_local_aws(process)


def start_local_aws(
    folder: Path, plugins: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], LocalAws]:
    """Start the server process; returns it and its endpoints once both ports answer.

    ``plugins`` (``module:function``) are called with ``folder`` in the server process
    before it serves: a test stand-in for what moto only records (an EMR job run).

    Raises:
        RuntimeError: the server did not come up (its log is named).
    """
    folder.mkdir(parents=True, exist_ok=True)
    ports = folder / "ports.json"
    ports.unlink(missing_ok=True)
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs.datagen.local_aws", str(ports), *plugins],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not ports.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the local AWS (moto) did not start: see {log}")
        time.sleep(0.1)
    found = json.loads(ports.read_text())
    return process, LocalAws(
        endpoint=f"http://127.0.0.1:{found['http']}",
        dynamodb_endpoint=f"https://127.0.0.1:{found['https']}",
        folder=folder,
        pid=process.pid,
    )


def stop_local_aws(process: subprocess.Popen[bytes]) -> None:
    """Stop the server process."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Latency:
    """WSGI middleware: requests matching a rule wait before moto serves them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rules: list[tuple[str, re.Pattern[str], float]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        if path == LATENCY_PATH and method == "POST":
            rule = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
            self.rules.append((rule["method"], re.compile(rule["path"]), float(rule["seconds"])))
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        if path == "/moto-api/reset":
            self.rules.clear()
        for rule_method, pattern, seconds in list(self.rules):
            if method == rule_method and pattern.search(path):
                time.sleep(seconds)
        return self.app(environ, start_response)


def _serve(ports: Path, plugins: Sequence[str] = ()) -> None:
    """Process entry: both ports on one moto state until SIGTERM; ports written when up."""
    import importlib

    for plugin in plugins:
        module, _, function = plugin.partition(":")
        getattr(importlib.import_module(module), function)(ports.parent)
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = _Latency(DomainDispatcherApplication(create_backend_app))
    servers: Mapping[str, Any] = {
        "http": make_server("127.0.0.1", 0, app, True, request_handler=MotoRequestHandler),
        "https": make_server(
            "127.0.0.1", 0, app, True, request_handler=MotoRequestHandler, ssl_context="adhoc"
        ),
    }
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    partial = ports.with_name(f".{ports.name}.partial")
    partial.write_text(json.dumps({k: s.server_address[1] for k, s in servers.items()}))
    partial.replace(ports)
    stop.wait()
    for server in servers.values():
        server.shutdown()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), sys.argv[2:])
