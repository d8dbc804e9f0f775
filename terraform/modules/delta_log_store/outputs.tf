output "table_name" {
  description = "DynamoDB table name (LAKEHOUSE__STORAGE__DELTA_LOG_TABLE)."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "DynamoDB table ARN."
  value       = aws_dynamodb_table.this.arn
}
