output "bucket_names" {
  description = "Lake bucket names by role."
  value       = local.buckets
}

output "emr_application_id" {
  description = "EMR Serverless application id."
  value       = module.emr.application_id
}

output "job_role_arn" {
  description = "EMR Serverless job execution role ARN."
  value       = module.iam.job_role_arn
}

output "airflow_role_arn" {
  description = "Airflow execution role ARN."
  value       = module.iam.airflow_role_arn
}

output "kms_key_arn" {
  description = "Platform KMS key ARN."
  value       = module.kms.key_arn
}

output "delta_log_table" {
  description = "DynamoDB table of Delta's S3DynamoDBLogStore."
  value       = module.delta_log_store.table_name
}

output "secret_arns" {
  description = "Source credential secrets (definitions; values are put by their owners)."
  value       = module.secrets.secret_arns
}

output "alarm_topic_arn" {
  description = "SNS topic of alarms and task failures."
  value       = module.monitoring.alarm_topic_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.monitoring.dashboard_name
}

output "mwaa_bucket_name" {
  description = "MWAA DAG bucket (null without MWAA)."
  value       = var.mwaa_enabled ? module.mwaa[0].bucket_name : null
}

# The job configuration of this environment as LAKEHOUSE__* variables: what
# config/<env>.yaml cannot know (ids) and what it must agree with (names). Export them
# for `lakehouse submit`/`backfill`, or set them as Airflow variables of the workers.
output "lakehouse_env" {
  description = "LAKEHOUSE__* overrides for the job config (jobs/common/config.py)."
  value = {
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
