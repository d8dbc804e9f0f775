# The whole lakehouse platform of one environment; envs/<env> call this with their tfvars.
data "aws_region" "current" {}

locals {
  prefix    = "lakehouse-${var.env}"
  region    = data.aws_region.current.name
  tags      = merge({ project = "lakehouse", env = var.env, managed_by = "terraform" }, var.tags)
  databases = ["bronze", "silver", "gold"]
  alarms    = jsondecode(file("${var.monitoring_dir}/alarms.json")).alarms
  secrets = {
    "lakehouse/${var.env}/crm-token" = "CRM REST API bearer token (sources.crm.credentials)"
    "lakehouse/${var.env}/opdb"      = "Operational database reader password (sources.opdb.credentials)"
  }
  buckets = module.lake.bucket_names
}

module "kms" {
  source = "../kms_key"

  name        = local.prefix
  description = "Lakehouse ${var.env}: lake buckets, secrets, logs, alarm topic, Delta log store"
  tags        = local.tags
}

module "lake" {
  source = "../data_lake"

  name_prefix                    = local.prefix
  kms_key_arn                    = module.kms.key_arn
  bronze_glacier_transition_days = var.bronze_glacier_transition_days
  force_destroy                  = var.force_destroy
  tags                           = local.tags
}

module "glue" {
  source = "../glue_catalog"

  env       = var.env
  databases = { for db in local.databases : db => "s3://${local.buckets[db]}" }
  tags      = local.tags
}

module "secrets" {
  source = "../secrets"

  secrets                 = local.secrets
  kms_key_arn             = module.kms.key_arn
  recovery_window_in_days = var.secret_recovery_window_in_days
  tags                    = local.tags
}

module "delta_log_store" {
  source = "../delta_log_store"

  name                = "${local.prefix}-delta-log"
  kms_key_arn         = module.kms.key_arn
  deletion_protection = var.deletion_protection
  tags                = local.tags
}

module "emr" {
  source = "../emr_serverless"

  name                 = local.prefix
  release_label        = var.emr_release_label
  architecture         = var.emr_architecture
  maximum_capacity     = var.emr_maximum_capacity
  idle_timeout_minutes = var.emr_idle_timeout_minutes
  initial_capacity     = var.emr_initial_capacity
  vpc_id               = var.vpc_id
  subnet_ids           = var.private_subnet_ids
  egress_rules         = var.emr_egress_rules
  tags                 = local.tags
}

module "monitoring" {
  source = "../monitoring"

  name_prefix             = local.prefix
  env                     = var.env
  region                  = local.region
  metrics_namespace       = var.metrics_namespace
  kms_key_arn             = module.kms.key_arn
  log_retention_days      = var.log_retention_days
  alarm_definitions       = local.alarms
  alarm_thresholds        = var.alarm_thresholds
  dashboard_template_path = "${var.monitoring_dir}/dashboard.json"
  freshness_hours         = var.freshness_hours
  alarm_emails            = var.alarm_emails
  tags                    = local.tags
}

module "iam" {
  source = "../iam_roles"

  name_prefix               = local.prefix
  bucket_arns               = module.lake.bucket_arns
  ops_prefix                = var.ops_prefix
  emr_application_arn       = module.emr.application_arn
  glue_database_names       = module.glue.database_names
  secret_arns               = values(module.secrets.secret_arns)
  kms_key_arn               = module.kms.key_arn
  delta_log_table_arn       = module.delta_log_store.table_arn
  job_log_group_name        = module.monitoring.job_log_group_name
  metrics_namespace         = var.metrics_namespace
  alarm_topic_arn           = module.monitoring.alarm_topic_arn
  mwaa_environment_name     = var.mwaa_enabled ? local.prefix : null
  mwaa_bucket_arn           = var.mwaa_enabled ? "arn:aws:s3:::${local.prefix}-airflow" : null
  airflow_trusted_role_arns = var.airflow_trusted_role_arns
  tags                      = local.tags
}

module "mwaa" {
  source = "../mwaa"
  count  = var.mwaa_enabled ? 1 : 0

  name               = local.prefix
  execution_role_arn = module.iam.airflow_role_arn
  kms_key_arn        = module.kms.key_arn
  access_log_bucket  = local.buckets["logs"]
  vpc_id             = var.vpc_id
  subnet_ids         = var.mwaa_subnet_ids
  environment_class  = var.mwaa_environment_class
  max_workers        = var.mwaa_max_workers
  force_destroy      = var.force_destroy
  tags               = local.tags
  # the DAG files' environment: which env they build, and its ids (outputs.tf)
  environment_variables = merge({ LAKEHOUSE_ENV = var.env }, local.lakehouse_env)
}

# The job configuration of this environment as LAKEHOUSE__* variables (output
# lakehouse_env; the MWAA workers' environment).
locals {
  lakehouse_env = {
    LAKEHOUSE__ENV                              = var.env
    LAKEHOUSE__EMR__APPLICATION_ID              = module.emr.application_id
    LAKEHOUSE__EMR__ARCHITECTURE                = var.emr_architecture
    LAKEHOUSE__EMR__EXECUTION_ROLE_ARN          = module.iam.job_role_arn
    LAKEHOUSE__EMR__REGION                      = local.region
    LAKEHOUSE__EMR__LOG_GROUP                   = module.monitoring.job_log_group_name
    LAKEHOUSE__STORAGE__ROOT                    = "s3://${local.buckets["artifacts"]}/${var.ops_prefix}"
    LAKEHOUSE__STORAGE__ARTIFACTS_URI           = "s3://${local.buckets["artifacts"]}/releases"
    LAKEHOUSE__STORAGE__LAYERS__LANDING         = "s3://${local.buckets["landing"]}"
    LAKEHOUSE__STORAGE__LAYERS__BRONZE          = "s3://${local.buckets["bronze"]}"
    LAKEHOUSE__STORAGE__LAYERS__SILVER          = "s3://${local.buckets["silver"]}"
    LAKEHOUSE__STORAGE__LAYERS__GOLD            = "s3://${local.buckets["gold"]}"
    LAKEHOUSE__STORAGE__DELTA_LOG_TABLE         = module.delta_log_store.table_name
    LAKEHOUSE__MONITORING__NAMESPACE            = var.metrics_namespace
    LAKEHOUSE__ORCHESTRATION__FAILURE_TOPIC_ARN = module.monitoring.alarm_topic_arn
  }
}
