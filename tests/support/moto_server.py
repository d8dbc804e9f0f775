"""A moto server (AWS APIs over HTTP on loopback) for the AWS-facing tests.

Runs in a thread of the test process, so a test can also reach into moto's state
(e.g. mark an EMR Serverless job run FAILED: moto finishes every run SUCCESS at once).
boto3 clients find it through ``AWS_ENDPOINT_URL``; Airflow's through the
``aws_default`` connection.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account


@dataclass(frozen=True)
class MotoServer:
    """A running moto server."""

    endpoint: str

    def reset(self) -> None:
        """Forget every resource (between tests)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def environ(self) -> dict[str, str]:
        """Environment that points boto3 and Airflow at this server."""
        connection = {
            "conn_type": "aws",
            "extra": {"endpoint_url": self.endpoint, "region_name": REGION},
        }
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        }


@contextmanager
def running_moto() -> Iterator[MotoServer]:
    """Start a moto server on a free loopback port for the block."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoServer(f"http://{host}:{port}")
    finally:
        server.stop()


def use_moto(monkeypatch: pytest.MonkeyPatch, server: MotoServer) -> MotoServer:
    """Point this test at ``server``, with no resources left from earlier tests."""
    server.reset()
    for name, value in server.environ().items():
        monkeypatch.setenv(name, value)
    return server


def emr_serverless_like_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this process's moto create EMR Serverless applications as AWS does.

    moto creates them STARTED (AWS: CREATED, started by the first job run), which
    Terraform's provider waits on in vain, and knows no release label after its own
    table (ours: ``emr-spark-8.2.0``). The label is kept as given.
    """
    from moto.emrserverless import models

    monkeypatch.setattr(models, "APPLICATION_STATUS", "CREATED")
    create = models.EMRServerlessBackend.create_application

    def create_application(
        self: models.EMRServerlessBackend, name: str, release_label: str, *args: Any, **kwargs: Any
    ) -> models.Application:
        application = create(self, name, "emr-7.12.0", *args, **kwargs)
        application.release_label = release_label
        return application

    monkeypatch.setattr(models.EMRServerlessBackend, "create_application", create_application)
