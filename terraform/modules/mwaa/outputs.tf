output "environment_arn" {
  description = "ARN of the MWAA environment."
  value       = aws_mwaa_environment.this.arn
}

output "bucket_name" {
  description = "Bucket for dags/ and requirements.txt."
  value       = module.bucket.name
}

output "webserver_url" {
  description = "Airflow UI (private: reachable from the VPC)."
  value       = aws_mwaa_environment.this.webserver_url
}
