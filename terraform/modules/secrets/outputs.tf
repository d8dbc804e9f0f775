output "secret_arns" {
  description = "Secret name -> ARN."
  value       = { for name, s in aws_secretsmanager_secret.this : name => s.arn }
}
