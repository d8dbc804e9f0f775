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
# for `lakehouse submit`/`backfill`; MWAA's workers get them from its startup script.
output "lakehouse_env" {
  description = "LAKEHOUSE__* overrides for the job config (jobs/common/config.py)."
  value       = local.lakehouse_env
}
