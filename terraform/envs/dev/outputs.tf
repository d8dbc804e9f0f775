output "bucket_names" {
  description = "Lake bucket names by role."
  value       = module.platform.bucket_names
}

output "emr_application_id" {
  description = "EMR Serverless application id."
  value       = module.platform.emr_application_id
}

output "job_role_arn" {
  description = "EMR Serverless job execution role ARN."
  value       = module.platform.job_role_arn
}

output "airflow_role_arn" {
  description = "Airflow execution role ARN."
  value       = module.platform.airflow_role_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of alarms and Airflow task failures."
  value       = module.platform.alarm_topic_arn
}

output "lakehouse_env" {
  description = "LAKEHOUSE__* job configuration of this environment (terraform output -json lakehouse_env)."
  value       = module.platform.lakehouse_env
}

output "mwaa_bucket_name" {
  description = "The MWAA environment's bucket (dags/, requirements.txt); null without MWAA."
  value       = module.platform.mwaa_bucket_name
}
