data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  buckets    = var.bucket_arns
  # read-write lake layers (Delta commits, OPTIMIZE rewrites, VACUUM deletes)
  lake_rw           = [for k in ["bronze", "silver", "gold"] : local.buckets[k]]
  glue_databases    = concat(var.glue_database_names, ["default"])
  log_group_arn     = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${var.job_log_group_name}"
  mwaa_env_arn      = "arn:${local.partition}:airflow:${local.region}:${local.account_id}:environment/${coalesce(var.mwaa_environment_name, "none")}"
  mwaa_log_group    = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:airflow-${coalesce(var.mwaa_environment_name, "none")}-*"
  application_runs  = "${var.emr_application_arn}/jobruns/*"
  emr_service_trust = "emr-serverless.amazonaws.com"
}

# ---------------------------------------------------------------- job execution role

data "aws_iam_policy_document" "job_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = [local.emr_service_trust]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [var.emr_application_arn]
    }
  }
}

data "aws_iam_policy_document" "job" {
  statement {
    sid       = "ListLakeBuckets"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [for k in ["landing", "bronze", "silver", "gold", "artifacts"] : local.buckets[k]]
  }

  statement {
    sid       = "ReadLandingAndArtifacts"
    actions   = ["s3:GetObject"]
    resources = ["${local.buckets["landing"]}/*", "${local.buckets["artifacts"]}/*"]
  }

  statement {
    sid       = "WriteLakeLayers"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [for arn in local.lake_rw : "${arn}/*"]
  }

  statement {
    sid       = "WriteRunRecords"
    actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${local.buckets["artifacts"]}/${var.ops_prefix}/*"]
  }

  statement {
    sid = "GlueCatalog"
    actions = [
      "glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables",
      "glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable",
      "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition",
      "glue:GetUserDefinedFunctions",
    ]
    resources = concat(
      ["arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog"],
      [for db in local.glue_databases : "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${db}"],
      [for db in var.glue_database_names : "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${db}/*"],
      [for db in local.glue_databases : "arn:${local.partition}:glue:${local.region}:${local.account_id}:userDefinedFunction/${db}/*"],
    )
  }

  statement {
    sid       = "SourceCredentials"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = var.secret_arns
  }

  statement {
    sid       = "PlatformKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:DescribeKey"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "DeltaLogStore"
    actions   = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"]
    resources = [var.delta_log_table_arn]
  }

  statement {
    sid       = "JobLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [local.log_group_arn, "${local.log_group_arn}:*"]
  }

  statement {
    sid       = "FindJobLogGroup"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
  }

  statement {
    sid       = "JobMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"] # PutMetricData has no resource-level permissions; the namespace condition scopes it

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.metrics_namespace]
    }
  }
}

resource "aws_iam_role" "job" {
  name                 = "${var.name_prefix}-emr-job"
  description          = "EMR Serverless job execution role of ${var.name_prefix}"
  assume_role_policy   = data.aws_iam_policy_document.job_trust.json
  max_session_duration = 3600 * 12
  tags                 = var.tags
}

resource "aws_iam_role_policy" "job" {
  name   = "lakehouse-jobs"
  role   = aws_iam_role.job.id
  policy = data.aws_iam_policy_document.job.json
}

# ---------------------------------------------------------------- Airflow role

data "aws_iam_policy_document" "airflow_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  dynamic "statement" {
    for_each = length(var.airflow_trusted_role_arns) > 0 ? [1] : []
    content {
      sid     = "SelfManagedAirflow"
      actions = ["sts:AssumeRole"]

      principals {
        type        = "AWS"
        identifiers = var.airflow_trusted_role_arns
      }
    }
  }
}

data "aws_iam_policy_document" "airflow" {
  statement {
    sid       = "RunJobs"
    actions   = ["emr-serverless:StartJobRun", "emr-serverless:GetJobRun", "emr-serverless:CancelJobRun", "emr-serverless:ListJobRuns", "emr-serverless:GetApplication", "emr-serverless:StartApplication", "emr-serverless:GetDashboardForJobRun"]
    resources = [var.emr_application_arn, local.application_runs]
  }

  statement {
    sid       = "PassJobRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.job.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = [local.emr_service_trust]
    }
  }

  statement {
    sid       = "ReadRunRecords"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [local.buckets["artifacts"]]
  }

  statement {
    sid       = "ReadRunSummaries"
    actions   = ["s3:GetObject"]
    resources = ["${local.buckets["artifacts"]}/${var.ops_prefix}/*"]
  }

  statement {
    sid       = "NotifyFailures"
    actions   = ["sns:Publish"]
    resources = [var.alarm_topic_arn]
  }

  statement {
    sid       = "PlatformKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [var.kms_key_arn]
  }

  dynamic "statement" {
    for_each = var.mwaa_environment_name == null ? [] : [1]
    content {
      sid       = "MwaaPublishMetrics"
      actions   = ["airflow:PublishMetrics"]
      resources = [local.mwaa_env_arn]
    }
  }

  dynamic "statement" {
    for_each = var.mwaa_environment_name == null ? [] : [1]
    content {
      sid       = "MwaaReadDags"
      actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:GetBucketPublicAccessBlock", "s3:GetBucketLocation"]
      resources = [var.mwaa_bucket_arn, "${var.mwaa_bucket_arn}/*"]
    }
  }

  dynamic "statement" {
    for_each = var.mwaa_environment_name == null ? [] : [1]
    content {
      sid       = "MwaaLogs"
      actions   = ["logs:CreateLogStream", "logs:CreateLogGroup", "logs:PutLogEvents", "logs:GetLogEvents", "logs:GetLogRecord", "logs:GetLogGroupFields", "logs:GetQueryResults", "logs:DescribeLogGroups"]
      resources = [local.mwaa_log_group, "${local.mwaa_log_group}:*"]
    }
  }

  dynamic "statement" {
    for_each = var.mwaa_environment_name == null ? [] : [1]
    content {
      sid       = "MwaaCeleryQueue"
      actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:SendMessage"]
      resources = ["arn:${local.partition}:sqs:${local.region}:*:airflow-celery-*"]
    }
  }

  dynamic "statement" {
    for_each = var.mwaa_environment_name == null ? [] : [1]
    content {
      sid       = "MwaaMetrics"
      actions   = ["cloudwatch:PutMetricData"]
      resources = ["*"] # PutMetricData has no resource-level permissions; the namespace condition scopes it

      condition {
        test     = "StringEquals"
        variable = "cloudwatch:namespace"
        values   = ["AmazonMWAA"]
      }
    }
  }
}

resource "aws_iam_role" "airflow" {
  name                 = "${var.name_prefix}-airflow"
  description          = "Airflow (MWAA or self-managed) of ${var.name_prefix}: submits EMR Serverless job runs"
  assume_role_policy   = data.aws_iam_policy_document.airflow_trust.json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "airflow" {
  name   = "lakehouse-orchestration"
  role   = aws_iam_role.airflow.id
  policy = data.aws_iam_policy_document.airflow.json
}
