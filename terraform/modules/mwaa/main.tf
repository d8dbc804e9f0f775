module "bucket" {
  source = "../s3_bucket"

  name              = "${var.name}-airflow"
  kms_key_arn       = var.kms_key_arn
  access_log_bucket = var.access_log_bucket
  force_destroy     = var.force_destroy
  tags              = var.tags
}

resource "aws_security_group" "this" {
  name        = "${var.name}-mwaa"
  description = "MWAA ${var.name}: its own components talk to each other; egress HTTPS only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

# MWAA requires its workers, scheduler and web server to reach each other.
resource "aws_vpc_security_group_ingress_rule" "self" {
  security_group_id            = aws_security_group.this.id
  description                  = "MWAA components among themselves"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.this.id
}

resource "aws_vpc_security_group_egress_rule" "self" {
  security_group_id            = aws_security_group.this.id
  description                  = "MWAA components among themselves"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.this.id
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.this.id
  description       = "HTTPS: AWS APIs (EMR Serverless, S3, SQS, CloudWatch, SNS)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# MWAA runs startup.sh before every Airflow component starts: the DAG files read their
# environment (LAKEHOUSE_ENV, LAKEHOUSE__EMR__APPLICATION_ID, ...) from it.
resource "aws_s3_object" "startup" {
  bucket     = module.bucket.name
  key        = "startup.sh"
  kms_key_id = var.kms_key_arn
  content = join("\n", concat(
    ["#!/bin/sh", "# written by Terraform (terraform/modules/mwaa): do not edit"],
    [for k in sort(keys(var.environment_variables)) : "export ${k}='${replace(var.environment_variables[k], "'", "'\\''")}'"],
    [""],
  ))
  tags = var.tags
}

resource "aws_mwaa_environment" "this" {
  name                             = var.name
  airflow_version                  = var.airflow_version
  environment_class                = var.environment_class
  min_workers                      = var.min_workers
  max_workers                      = var.max_workers
  execution_role_arn               = var.execution_role_arn
  kms_key                          = var.kms_key_arn
  source_bucket_arn                = module.bucket.arn
  dag_s3_path                      = "dags/"
  requirements_s3_path             = "requirements.txt"
  startup_script_s3_path           = aws_s3_object.startup.key
  startup_script_s3_object_version = aws_s3_object.startup.version_id
  webserver_access_mode            = "PRIVATE_ONLY"

  airflow_configuration_options = {
    "core.default_timezone" = "utc"
  }

  network_configuration {
    security_group_ids = [aws_security_group.this.id]
    subnet_ids         = var.subnet_ids
  }

  logging_configuration {
    dag_processing_logs {
      enabled   = true
      log_level = "INFO"
    }
    scheduler_logs {
      enabled   = true
      log_level = "INFO"
    }
    task_logs {
      enabled   = true
      log_level = "INFO"
    }
    webserver_logs {
      enabled   = true
      log_level = "WARNING"
    }
    worker_logs {
      enabled   = true
      log_level = "INFO"
    }
  }

  tags = var.tags
}
