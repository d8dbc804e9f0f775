"""A throwaway Apache Kafka broker for the Kafka-path tests (a real broker, one KRaft node).

The broker's jars come from Maven Central (``jvm/kafka-broker/pom.xml``, fetched by
``make kafka-broker`` into ``.jars-test/kafka-broker``). It runs in its own JVM, as
broker and controller at once, listening on 127.0.0.1 only, with its log dirs in a
temporary folder that is removed when it stops.
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BROKER_JARS = PROJECT_ROOT / ".jars-test" / "kafka-broker"


@dataclass
class KafkaBroker:
    bootstrap_servers: str
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def log_file(self) -> Path:
        return self.root / "broker.log"


def _classpath() -> str:
    if not list(BROKER_JARS.glob("kafka_2.13-*.jar")):
        raise RuntimeError(
            f"Kafka broker jars not found in {BROKER_JARS}: run `make kafka-broker` "
            "(or `make test`, which fetches them from Maven Central)"
        )
    return f"{BROKER_JARS}/*"


def _cluster_id() -> str:
    # Kafka's argument parser reads an id starting with "-" as an option: the id is
    # URL-safe base64 of 16 random bytes, so clear the sign bit of the first byte.
    raw = bytearray(uuid.uuid4().bytes)
    raw[0] &= 0x7F
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def start_kafka(timeout: float = 60.0) -> KafkaBroker:
    """Format a fresh KRaft log dir and start a broker; returns once it accepts clients."""
    java = shutil.which("java")
    if not java:
        raise RuntimeError("java is required to run the test Kafka broker")
    classpath = _classpath()
    root = Path(tempfile.mkdtemp(prefix="lakehouse-kafka-"))
    port, controller = free_port(), free_port()
    config = root / "server.properties"
    config.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={root / 'data'}",
                "num.partitions=2",
                "auto.create.topics.enable=true",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "",
            ]
        )
    )
    jvm = [java, "-Xms128m", "-Xmx512m", "-cp", classpath]
    subprocess.run(
        [*jvm, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(config)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    log = (root / "broker.log").open("wb")
    process = subprocess.Popen([*jvm, "kafka.Kafka", str(config)], stdout=log, stderr=log)
    broker = KafkaBroker(f"127.0.0.1:{port}", root, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Kafka broker exited: {broker.log_file.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return broker
        except OSError:
            time.sleep(0.3)
    stop_kafka(broker)
    raise RuntimeError(f"Kafka broker did not listen on {port} within {timeout}s")


def stop_kafka(broker: KafkaBroker) -> None:
    broker.process.terminate()
    try:
        broker.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        broker.process.kill()
        broker.process.wait()
    shutil.rmtree(broker.root, ignore_errors=True)
