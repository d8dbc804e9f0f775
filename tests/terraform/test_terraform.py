"""terraform/: formatted, valid per root, checkov-clean, and the dev env applied to moto.

The apply runs the dev environment as a user would (init, plan, apply, plan again,
destroy) with the provider's endpoints pointed at the moto server; then it checks what
moto holds against what the modules promise and that the outputs feed the job config.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from aws.submit import submit
from jobs.common.config import load_settings
from tests.support.moto_server import ACCOUNT, REGION, MotoServer, emr_serverless_like_aws
from tests.support.terraform import Terraform, find_terraform

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
RESOURCES = 74  # what the dev env creates (one per resource block instance)
# each skip is reviewed: a new one must be added here with its reason in the code
REVIEWED_SKIPS = {
    "CKV_AWS_144",  # cross-region replication: a DR choice, lake rebuildable
    "CKV2_AWS_62",  # S3 event notifications: nothing consumes them
    "CKV2_AWS_57",  # secret rotation: owned by the source systems, runbook
    "CKV2_AWS_5",  # EMR security group: attached through network_configuration
    "CKV_AWS_109",  # key policy Resource "*" is the key itself
    "CKV_AWS_111",
    "CKV_AWS_356",
}
# attributes moto does not store or return, so a second plan shows them as changes
MOTO_DRIFT = {
    "aws_emrserverless_application": {"architecture"},
    "aws_kms_key": {"rotation_period_in_days"},
}


@pytest.fixture(scope="module")
def terraform() -> Terraform:
    found = find_terraform()
    if isinstance(found, str):
        pytest.skip(f"TERRAFORM CHECKS NOT RUN: {found}; see terraform/README.md")
    return found


def test_terraform_files_are_formatted(terraform: Terraform, tmp_path: Path) -> None:
    done = terraform.run(TERRAFORM, "fmt", "-check", "-recursive", "-diff", data_dir=tmp_path)
    assert done.returncode == 0, f"terraform fmt -recursive terraform/ needed:\n{done.stdout}"


@pytest.mark.parametrize("root", ["envs/dev", "envs/prod", "bootstrap"])
def test_each_root_validates(terraform: Terraform, tmp_path: Path, root: str) -> None:
    terraform.init(TERRAFORM / root, data_dir=tmp_path)
    done = terraform.run(TERRAFORM / root, "validate", "-json", data_dir=tmp_path)
    report = json.loads(done.stdout)
    assert (report["valid"], report["error_count"], report["warning_count"]) == (True, 0, 0), (
        report["diagnostics"]
    )


def test_checkov_passes_with_only_reviewed_skips_each_with_its_reason() -> None:
    if not CHECKOV.is_file():
        pytest.skip(f"CHECKOV NOT RUN: {CHECKOV} missing; `make checkov` installs it")
    done = subprocess.run(
        [str(CHECKOV), "-d", ".", "--config-file", ".checkov.yaml", "-o", "json"],
        cwd=TERRAFORM, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = json.loads(done.stdout)
    results, summary = report["results"], report["summary"]
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in results["failed_checks"]]
    assert (failed, summary["parsing_errors"]) == ([], 0)
    assert summary["passed"] > 300  # every module was scanned
    skipped = {
        c["check_id"]: c["check_result"].get("suppress_comment", "")
        for c in results["skipped_checks"]
    }
    assert set(skipped) == REVIEWED_SKIPS
    assert all(len(reason) > 40 for reason in skipped.values()), skipped


@pytest.mark.slow
@pytest.mark.integration
def test_dev_env_plans_applies_and_destroys_on_moto(
    terraform: Terraform, aws: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emr_serverless_like_aws(monkeypatch)
    env_dir = _copy_dev_env(tmp_path / "repo")
    (env_dir / "moto_override.tf").write_text(_moto_override(aws.endpoint))
    network = _private_network()
    (env_dir / "network.auto.tfvars.json").write_text(json.dumps(network))
    data_dir = tmp_path / "tf-data"

    def tf(*args: str) -> str:
        done = terraform.run(env_dir, *args, "-no-color", data_dir=data_dir)
        assert done.returncode == 0, f"terraform {args[0]}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    terraform.init(env_dir, data_dir=data_dir, backend=True)
    assert f"Plan: {RESOURCES} to add, 0 to change, 0 to destroy." in tf("plan", "-out=dev.tfplan")
    assert f"Apply complete! Resources: {RESOURCES} added" in tf("apply", "dev.tfplan")
    outputs = json.loads(tf("output", "-json"))

    # the outputs are the job config: names agree with config/dev.yaml, ids are new
    from_terraform = load_settings("dev", environ=outputs["lakehouse_env"]["value"])
    from_yaml = load_settings("dev", environ={})
    assert from_terraform.storage == from_yaml.storage
    assert from_terraform.monitoring == from_yaml.monitoring
    assert (from_terraform.emr.log_group, from_terraform.emr.region) == (
        from_yaml.emr.log_group,
        from_yaml.emr.region,
    )
    # the venv archive is built for the application's architecture (lakehouse package)
    assert from_terraform.emr.architecture == from_yaml.emr.architecture == "X86_64"
    assert "mwaa_bucket_name" not in outputs  # dev runs no MWAA (a null output is omitted)
    app_id = from_terraform.emr.application_id
    assert app_id == outputs["emr_application_id"]["value"]
    _assert_platform(app_id, network)
    run = submit(from_terraform, "gold.customer_360", "2026-01-05", wait=True)
    assert run.state == "SUCCESS"  # the role and application ids are accepted

    tf("plan", "-out=again.tfplan")
    assert _changed_attributes(tf("show", "-json", "again.tfplan")) == MOTO_DRIFT

    assert f"Destroy complete! Resources: {RESOURCES} destroyed." in tf("destroy", "-auto-approve")
    assert boto3.client("s3").list_buckets()["Buckets"] == []
    assert boto3.client("iam").list_roles()["Roles"] == []


def _copy_dev_env(repo: Path) -> Path:
    """The dev root with the modules and monitoring/ it reads, at the same relative paths."""
    shutil.copytree(TERRAFORM / "modules", repo / "terraform" / "modules")
    shutil.copytree(TERRAFORM / "envs" / "dev", repo / "terraform" / "envs" / "dev")
    shutil.copytree(ROOT / "monitoring", repo / "monitoring")
    return repo / "terraform" / "envs" / "dev"


def _moto_override(endpoint: str) -> str:
    """An override file: local state, moto's account, every service at ``endpoint``."""
    services = [
        "cloudwatch", "dynamodb", "ec2", "emrserverless", "glue", "iam", "kms", "logs", "s3",
        "secretsmanager", "sns", "sts",
    ]  # fmt: skip
    endpoints = "\n".join(f'    {name} = "{endpoint}"' for name in services)
    return f"""terraform {{
  backend "local" {{}}
}}

provider "aws" {{
  region                      = "{REGION}"
  access_key                  = "testing"
  secret_key                  = "testing"
  allowed_account_ids         = ["{ACCOUNT}"]
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_metadata_api_check     = true

  endpoints {{
{endpoints}
  }}
}}
"""


def _private_network() -> dict[str, Any]:
    """A VPC with two private subnets in moto, for EMR Serverless's network configuration."""
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.10.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.10.{i}.0/24", AvailabilityZone=f"{REGION}{z}")
        for i, z in ((1, "a"), (2, "b"))
    ]
    return {"vpc_id": vpc, "private_subnet_ids": [s["Subnet"]["SubnetId"] for s in subnets]}


def _assert_platform(app_id: str, network: dict[str, Any]) -> None:
    """What the modules promise, read back from moto."""
    app = boto3.client("emr-serverless").get_application(applicationId=app_id)["application"]
    assert (app["releaseLabel"], app["state"], app["autoStopConfiguration"]) == (
        "emr-spark-8.2.0",
        "CREATED",
        {"enabled": True, "idleTimeoutMinutes": 15},
    )
    assert sorted(app["networkConfiguration"]["subnetIds"]) == sorted(network["private_subnet_ids"])

    s3 = boto3.client("s3")
    key_arn = boto3.client("kms").describe_key(KeyId="alias/lakehouse-dev")["KeyMetadata"]["Arn"]
    for role in ("landing", "bronze", "silver", "gold", "artifacts", "logs"):
        bucket = f"lakehouse-dev-{role}"
        sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        default = sse["Rules"][0]["ApplyServerSideEncryptionByDefault"]
        expected = {"SSEAlgorithm": "AES256"} if role == "logs" else {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn,
        }  # fmt: skip
        assert default == expected, bucket
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4, bucket
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        deny = next(s for s in policy["Statement"] if s["Sid"] == "DenyInsecureTransport")
        assert (deny["Effect"], deny["Condition"]) == (
            "Deny",
            {"Bool": {"aws:SecureTransport": "false"}},
        )
        logging = s3.get_bucket_logging(Bucket=bucket).get("LoggingEnabled")
        assert logging == (None if role == "logs" else {
            "TargetBucket": "lakehouse-dev-logs", "TargetPrefix": f"s3/{bucket}/",
        }), bucket  # fmt: skip
    rules = s3.get_bucket_lifecycle_configuration(Bucket="lakehouse-dev-bronze")["Rules"]
    assert rules[0]["Transitions"] == [{"Days": 90, "StorageClass": "GLACIER_IR"}]
    assert rules[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}

    iam = boto3.client("iam")
    trust = iam.get_role(RoleName="lakehouse-dev-emr-job")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": app["arn"]},
    }
    for role in ("lakehouse-dev-emr-job", "lakehouse-dev-airflow"):
        (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        actions = [a for s in document["Statement"] for a in _as_list(s["Action"])]
        assert not [a for a in actions if "*" in a.split(":")[1]], (role, actions)

    databases = {d["Name"] for d in boto3.client("glue").get_databases()["DatabaseList"]}
    assert databases == {"bronze", "silver", "gold"}
    secrets = boto3.client("secretsmanager")
    names = {s["Name"] for s in secrets.list_secrets()["SecretList"]}
    assert names == {"lakehouse/dev/crm-token", "lakehouse/dev/opdb"}
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):  # definitions, no value
        secrets.get_secret_value(SecretId="lakehouse/dev/opdb")

    alarms = json.loads((ROOT / "monitoring" / "alarms.json").read_text())["alarms"]
    found = boto3.client("cloudwatch").describe_alarms()["MetricAlarms"]
    assert {a["AlarmName"] for a in found} == {f"lakehouse-dev-{a['id']}" for a in alarms}
    table = boto3.client("dynamodb").describe_table(TableName="lakehouse-dev-delta-log")["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "tablePath", "KeyType": "HASH"},
        {"AttributeName": "fileName", "KeyType": "RANGE"},
    ]


def _changed_attributes(plan_json: str) -> dict[str, set[str]]:
    """Resource type -> attributes a saved plan would change (creates/deletes fail)."""
    changed: dict[str, set[str]] = {}
    for change in json.loads(plan_json).get("resource_changes", []):
        actions = change["change"]["actions"]
        if actions == ["no-op"]:
            continue
        assert actions == ["update"], (change["address"], actions)
        before, after = change["change"]["before"], change["change"]["after"]
        keys = {k for k in after if before.get(k) != after.get(k)}
        changed.setdefault(change["type"], set()).update(keys)
    return changed


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value
