output "job_role_arn" {
  description = "EMR Serverless job execution role (LAKEHOUSE__EMR__EXECUTION_ROLE_ARN)."
  value       = aws_iam_role.job.arn
}

output "airflow_role_arn" {
  description = "Airflow execution role (MWAA, or assumed by a self-managed Airflow)."
  value       = aws_iam_role.airflow.arn
}
