"""EMR Serverless for the tests: a StartJobRun that runs the job, as the service would.

moto records a job run and calls it SUCCESS at once. :func:`install`, loaded into the
local AWS process (``start_local_aws(..., plugins=[PLUGIN])``), makes moto's
``StartJobRun`` start this module as the service's worker instead: the run is
SUBMITTED, then RUNNING, then SUCCESS or FAILED by the job's exit code, with EMR's
``stateDetails``. One run executes at a time (two cores). A repeated ``clientToken``
returns the existing run, as EMR does.

The worker (:func:`execute`) does what EMR Serverless does with the request:

1. downloads every ``spark.archives`` entry from S3 and unpacks it under its alias in
   a clean working directory (the container's ``/home/hadoop``); ``spark.emr-serverless.
   driverEnv.*`` become the driver's environment, other ``spark.emr-serverless.*``
   settings are the service's own and are not passed to Spark;
2. runs ``/usr/lib/spark/bin/spark-submit`` with the request's other parameters, entry
   point and arguments (``local[2]`` stands in for the cluster manager; Spark fetches
   ``s3://`` jars and the entry point itself, through the image's S3A), in a private
   mount namespace that provides the image and hides this machine:

   - ``/usr/lib/spark``: pyspark's distribution (Spark 4.1.1 for the release's 4.1.3);
   - ``/usr/share/aws/delta/lib``: ``delta-spark.jar``, ``delta-storage.jar`` (Delta
     4.2.0, from Maven Central via ``jvm/pom.xml``) and ``delta-storage-s3-dynamodb.jar``
     (built from Delta's v4.2.0 tag, ``../shared/jars``), as the image names them;
   - ``/usr/share/aws/emr/s3a``: the S3 connector (``jvm/s3``) and its settings, with
     ``/etc/spark/conf/spark-defaults.conf`` pointing ``s3://`` at moto as the image
     points it at S3 (S3A serves ``s3://`` since EMR 7.10);
   - ``/usr/bin/python3.11``: this machine's Debian CPython 3.11, bare (its
     ``dist-packages`` hidden);
   - hidden behind empty file systems: the checkout (and ``../shared``), ``/root``
     (pyenv, uv's cache) and ``/usr/local/lib/python3.11``: the archive runs byte for
     byte as uploaded, or not at all.

3. writes the driver's stdout and stderr, gzipped, to
   ``<logUri>applications/<app>/jobs/<run>/SPARK_DRIVER/`` and, when the request asks
   for CloudWatch, to ``<prefix>/applications/<app>/jobs/<run>/SPARK_DRIVER/stdout|stderr``
   streams of its log group.

The AWS APIs the job calls (S3, DynamoDB, Secrets Manager, CloudWatch) are moto's: the
job's environment names them (``AWS_ENDPOINT_URL``, test keys) where EMR gives the
execution role's credentials. Mount points missing on this machine are created empty.
The Glue Data Catalog is not emulated: Hive's embedded metastore stands in.

``python -m tests.support.emr_emulator <request.json>`` is the worker's entry.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "tests.support.emr_emulator:install"
RELEASE = "emr-spark-8.2.0"
SPARK_HOME = "/usr/lib/spark"
DELTA_LIB = "/usr/share/aws/delta/lib"
S3A_HOME = "/usr/share/aws/emr/s3a"
SPARK_CONF = "/etc/spark/conf"
IMAGE_PYTHON = "/usr/bin/python3.11"
WORKDIR = "/home/hadoop"  # the container's working directory on EMR
SERVICE_PREFIX = "spark.emr-serverless."
DRIVER_ENV = f"{SERVICE_PREFIX}driverEnv."
HIDDEN_PYTHON = ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3.11")


@dataclass(frozen=True)
class Outcome:
    """How a run ended: EMR's state, its details, the driver's exit code."""

    state: str
    details: str
    exit_code: int


# -- inside the moto process: StartJobRun starts a worker --------------------------------


def install(folder: Path) -> None:
    """Make moto's ``StartJobRun`` run jobs (called in the local AWS process)."""
    from moto.emrserverless import models

    backend_class = models.EMRServerlessBackend
    original = backend_class.start_job_run
    one_at_a_time = threading.Lock()

    def start_job_run(self: Any, **request: Any) -> Any:
        token = request.get("client_token")
        for run in self.job_runs.get(request["application_id"], []):
            if token and run.client_token == token:
                return run  # EMR: the same token is the same run
        run = original(self, **request)
        run.state = "SUBMITTED"
        spec = {
            "applicationId": run.application_id,
            "jobRunId": run.id,
            "name": run.name,
            "releaseLabel": run.release_label,
            "executionRoleArn": run.execution_role_arn,
            "jobDriver": run.job_driver,
            "configurationOverrides": run.configuration_overrides or {},
            "executionTimeoutMinutes": run.execution_timeout_minutes,
        }
        runs = folder / "emr-runs" / run.id
        runs.mkdir(parents=True, exist_ok=True)
        (runs / "request.json").write_text(json.dumps(spec, indent=2))
        thread = threading.Thread(
            target=_work, args=(run, runs, folder, one_at_a_time), daemon=True
        )
        thread.start()
        return run

    backend_class.start_job_run = start_job_run  # type: ignore[method-assign]
    create = backend_class.create_application

    def create_application(self: Any, **request: Any) -> Any:
        # moto knows emr-N.N.0 labels only; the AWS runtime for Spark is emr-spark-N.N.N
        label = request["release_label"]
        if not re.fullmatch(r"emr-spark-\d+\.\d+\.\d+", label):
            return create(self, **request)
        application = create(self, **{**request, "release_label": "emr-7.12.0"})
        application.release_label = label
        return application

    backend_class.create_application = create_application  # type: ignore[method-assign]


def _work(run: Any, runs: Path, folder: Path, lock: threading.Lock) -> None:
    with lock:
        if run.state == "CANCELLED":
            return
        run.state = "RUNNING"
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with (runs / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tests.support.emr_emulator", str(runs / "request.json"),
                 str(folder)],
                cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            while worker.poll() is None:
                if run.state == "CANCELLED":
                    worker.terminate()
                time.sleep(0.5)
        result = runs / "outcome.json"
        if run.state == "CANCELLED":
            return
        if result.is_file():
            outcome = json.loads(result.read_text())
            run.state, run.state_details = outcome["state"], outcome["details"]
        else:
            run.state = "FAILED"
            run.state_details = f"the emulator's worker failed: see {runs / 'worker.log'}"
        run.total_execution_duration_seconds = int(time.monotonic() - started)


# -- the worker: one job run as EMR runs it -----------------------------------------------


def execute(request: dict[str, Any], folder: Path) -> Outcome:
    """Run ``request`` (StartJobRun's fields) on the emulated image; returns its outcome."""
    if request["releaseLabel"] != RELEASE:
        raise RuntimeError(f"release {request['releaseLabel']}: the emulator's image is {RELEASE}")
    aws = _aws(folder)
    image = prepare_image(folder / "image", aws)
    run_id = request["jobRunId"]
    home = folder / "emr-runs" / run_id / "home"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    submit = request["jobDriver"]["sparkSubmit"]
    params, archives, driver_env = split_parameters(submit.get("sparkSubmitParameters", ""))
    for uri, alias in archives:
        _unpack(_download(aws, uri, home / "archives"), home / alias)
    command = [f"{SPARK_HOME}/bin/spark-submit", "--master", "local[2]", *params,
               submit["entryPoint"], *submit.get("entryPointArguments", [])]  # fmt: skip
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": WORKDIR,
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "JAVA_HOME": _java_home(),
        "SPARK_HOME": SPARK_HOME,
        "SPARK_CONF_DIR": SPARK_CONF,
        **_aws_environ(aws),
        **driver_env,
    }
    stdout, stderr = home.parent / "stdout", home.parent / "stderr"
    timeout = 60 * int(request.get("executionTimeoutMinutes") or 720)
    code = _run_in_image(image, home, command, env, stdout, stderr, timeout)
    _publish_logs(aws, request, stdout, stderr)
    if code == 0:
        return Outcome("SUCCESS", "", 0)
    last = _last_exception(stdout, stderr)
    return Outcome(
        "FAILED",
        "Job failed, please check complete logs in configured logging destination. "
        f"ExitCode: {code}. Last few exceptions: {last}"[:2000],
        code,
    )


def split_parameters(text: str) -> tuple[list[str], list[tuple[str, str]], dict[str, str]]:
    """``sparkSubmitParameters`` -> (what spark-submit gets, archives, driver environment).

    Raises:
        ValueError: a ``--conf`` without ``key=value``.
    """
    tokens = shlex.split(text)
    params: list[str] = []
    archives: list[tuple[str, str]] = []
    env: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--conf" and i + 1 < len(tokens):
            key, sep, value = tokens[i + 1].partition("=")
            if not sep:
                raise ValueError(f"--conf {tokens[i + 1]!r}: expected key=value")
            if key == "spark.archives":
                for entry in value.split(","):
                    uri, _, alias = entry.partition("#")
                    archives.append((uri, alias or Path(uri).name))
            elif key.startswith(DRIVER_ENV):
                env[key.removeprefix(DRIVER_ENV)] = value
            elif not key.startswith(SERVICE_PREFIX):
                params += ["--conf", f"{key}={value}"]
            i += 2
            continue
        params.append(token)
        i += 1
    return params, archives, env


@dataclass(frozen=True)
class Image:
    """The staged image: host folders to mount at the image's locations."""

    mounts: tuple[tuple[Path, str], ...]


def prepare_image(folder: Path, aws: dict[str, str]) -> Image:
    """Stage the image's Delta jars, S3 connector and Spark defaults under ``folder``."""
    import pyspark

    from jobs.common.jars import s3_jars
    from jobs.datagen.local_aws import write_client_files

    region = aws["region"]
    delta, s3a, conf = folder / "delta-lib", folder / "s3a", folder / "spark-conf"
    for made in (delta, s3a / "lib", s3a / "conf", conf):
        made.mkdir(parents=True, exist_ok=True)
    jars = {p.name: p for p in (PROJECT_ROOT / ".jars").glob("*.jar")}
    shared = [p for p in s3_jars(PROJECT_ROOT) if p.name.startswith("delta-storage-s3-dynamodb")]
    image_jars = {
        "delta-spark.jar": next(p for n, p in jars.items() if n.startswith("delta-spark_")),
        "delta-storage.jar": next(p for n, p in jars.items() if n.startswith("delta-storage-")),
        "delta-storage-s3-dynamodb.jar": shared[0],
    }
    for name, source in image_jars.items():
        shutil.copyfile(source, delta / name)
    for jar in s3_jars(PROJECT_ROOT):
        if jar not in shared:
            shutil.copyfile(jar, s3a / "lib" / jar.name)
    # the log store's SDK v1 client: region metadata and signing override, as locally
    client = write_client_files(folder, aws["dynamodb_endpoint"], region)
    shutil.copyfile(folder / "regions.xml", conf / "regions.xml")
    shutil.copyfile(client / "awssdk_config_override.json",
                    s3a / "conf" / "awssdk_config_override.json")  # fmt: skip
    classpath = f"{S3A_HOME}/lib/*:{S3A_HOME}/conf"
    defaults = {
        "spark.driver.extraClassPath": classpath,
        "spark.executor.extraClassPath": classpath,
        "spark.driver.extraJavaOptions": (
            f"-Duser.timezone=UTC -Dcom.amazonaws.regions.RegionUtils.fileOverride="
            f"{SPARK_CONF}/regions.xml -Dcom.amazonaws.sdk.disableCertChecking=true"
        ),
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.endpoint": aws["endpoint"],
        "spark.hadoop.fs.s3a.endpoint.region": region,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.ui.enabled": "false",
    }
    (conf / "spark-defaults.conf").write_text(
        "".join(f"{key} {value}\n" for key, value in defaults.items())
    )
    spark_dist = Path(pyspark.__file__).parent
    return Image(
        mounts=(
            (spark_dist, SPARK_HOME),
            (delta, DELTA_LIB),
            (s3a, S3A_HOME),
            (conf, SPARK_CONF),
        )
    )


def _hidden() -> list[str]:
    """What the job must not see: the checkout, ../shared, /root, Python's extra paths."""
    hidden = [str(PROJECT_ROOT), "/root", *HIDDEN_PYTHON]
    shared = PROJECT_ROOT.parent / "shared"
    if shared.is_dir():
        hidden.append(str(shared))
    for name in ("UV_CACHE_DIR", "PYENV_ROOT"):
        if os.environ.get(name):
            hidden.append(os.environ[name])
    found = sorted({os.path.realpath(h) for h in hidden if Path(h).is_dir()})
    # a folder inside another hidden one is hidden with it (and no mount point once it is)
    return [h for h in found if not any(h.startswith(f"{o}/") for o in found if o != h)]


def _run_in_image(
    image: Image,
    home: Path,
    command: list[str],
    env: dict[str, str],
    stdout: Path,
    stderr: Path,
    timeout: float,
) -> int:
    """Run ``command`` in a private mount namespace holding the image; its exit code."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        raise RuntimeError("the EMR emulator needs root and unshare(1) (a private mount namespace)")
    if not Path(IMAGE_PYTHON).is_file():
        raise RuntimeError(f"the EMR emulator needs a CPython 3.11 at {IMAGE_PYTHON}")
    lines = ["set -eu"]
    for source, target in (*image.mounts, (home, WORKDIR)):
        Path(target).mkdir(parents=True, exist_ok=True)  # an empty mount point on the host
        lines.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
    for folder in _hidden():
        lines.append(f"mount -t tmpfs -o size=1m,mode=0755 emulator-hidden {shlex.quote(folder)}")
    probe = PROJECT_ROOT / "pyproject.toml"
    lines += [
        f"if [ -e {shlex.quote(str(probe))} ]; then echo 'checkout visible' >&2; exit 97; fi",
        f"cd {WORKDIR}",
        "exec " + " ".join(shlex.quote(part) for part in command),
    ]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", "\n".join(lines)],
            env=env, stdout=out, stderr=err, cwd="/",
        )  # fmt: skip
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            err.write(b"\nemulator: the run exceeded executionTimeoutMinutes\n")
            return 124


def _last_exception(*logs: Path) -> str:
    lines = [line for log in logs for line in log.read_text(errors="replace").splitlines()]
    found = [line.strip() for line in lines if "Error" in line or "Exception" in line]
    found = [line for line in found if not line.startswith(("at ", "WARN"))]
    return " | ".join(found[-3:]) or (lines[-1].strip() if lines else "no output")


# -- S3, logs and the local AWS ---------------------------------------------------------


def _aws(folder: Path) -> dict[str, str]:
    ports = json.loads((folder / "ports.json").read_text())
    from jobs.datagen.local_aws import REGION

    return {
        "endpoint": f"http://127.0.0.1:{ports['http']}",
        "dynamodb_endpoint": f"https://127.0.0.1:{ports['https']}",
        "region": REGION,
    }


def _aws_environ(aws: dict[str, str]) -> dict[str, str]:
    from jobs.datagen.local_aws import ACCESS_KEY, SECRET_KEY

    return {
        "AWS_ENDPOINT_URL": aws["endpoint"],
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": aws["region"],
        "AWS_DEFAULT_REGION": aws["region"],
    }


def _client(aws: dict[str, str], service: str) -> Any:
    import boto3

    from jobs.datagen.local_aws import ACCESS_KEY, SECRET_KEY

    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=aws["region"]
    )
    return session.client(service, endpoint_url=aws["endpoint"])


def _download(aws: dict[str, str], uri: str, folder: Path) -> Path:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(key).name
    _client(aws, "s3").download_file(bucket, key, str(target))
    return target


def _unpack(archive: Path, target: Path) -> None:
    """Unpack as YARN localises an archive: its members, links kept as they are."""
    target.mkdir(parents=True)
    with tarfile.open(archive) as packed:
        packed.extractall(target, filter="tar")


def _publish_logs(aws: dict[str, str], request: dict[str, Any], *logs: Path) -> None:
    monitoring = request["configurationOverrides"].get("monitoringConfiguration", {})
    where = f"applications/{request['applicationId']}/jobs/{request['jobRunId']}/SPARK_DRIVER"
    log_uri = monitoring.get("s3MonitoringConfiguration", {}).get("logUri")
    if log_uri:
        bucket, _, prefix = log_uri.removeprefix("s3://").partition("/")
        s3 = _client(aws, "s3")
        for log in logs:
            key = f"{prefix.rstrip('/')}/{where}/{log.name}.gz".lstrip("/")
            s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(log.read_bytes()))
    cloudwatch = monitoring.get("cloudWatchLoggingConfiguration", {})
    if cloudwatch.get("enabled"):
        logs_client = _client(aws, "logs")
        group = cloudwatch.get("logGroupName", "/aws/emr-serverless")
        prefix = cloudwatch.get("logStreamNamePrefix", "")
        for log in logs:
            stream = f"{prefix}/{where}/{log.name}".lstrip("/")
            logs_client.create_log_stream(logGroupName=group, logStreamName=stream)
            for batch in _batches(log):
                logs_client.put_log_events(
                    logGroupName=group, logStreamName=stream, logEvents=batch
                )


def _batches(log: Path, size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    now = int(time.time() * 1000)
    lines = [line for line in log.read_text(errors="replace").splitlines() if line]
    for start in range(0, len(lines), size):
        yield [{"timestamp": now, "message": line[:8000]} for line in lines[start : start + size]]


def _java_home() -> str:
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("the EMR emulator needs Java 17 (the image's Corretto 17)")
    return str(Path(os.path.realpath(java)).parent.parent)


def main(argv: list[str]) -> int:
    """Worker entry: ``<request.json> <local AWS folder>``; writes ``outcome.json`` beside."""
    request_path, folder = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    started = time.monotonic()
    try:
        outcome = execute(request, folder)
    except Exception as exc:  # the service failed, not the job: say so in the details
        outcome = Outcome("FAILED", f"emulator: {type(exc).__name__}: {exc}", -1)
    record = {**outcome.__dict__, "seconds": round(time.monotonic() - started, 1)}
    (request_path.parent / "outcome.json").write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
