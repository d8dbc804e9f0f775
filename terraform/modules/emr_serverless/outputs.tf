output "application_id" {
  description = "EMR Serverless application id (LAKEHOUSE__EMR__APPLICATION_ID)."
  value       = aws_emrserverless_application.this.id
}

output "application_arn" {
  description = "EMR Serverless application ARN."
  value       = aws_emrserverless_application.this.arn
}

output "security_group_id" {
  description = "Security group of the workers (null without a VPC)."
  value       = local.in_vpc ? aws_security_group.this[0].id : null
}
