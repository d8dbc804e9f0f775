output "bucket_names" {
  description = "Bucket name per role: landing, bronze, silver, gold, artifacts, logs."
  value       = merge({ for k, b in module.bucket : k => b.name }, { logs = module.logs.name })
}

output "bucket_arns" {
  description = "Bucket ARN per role: landing, bronze, silver, gold, artifacts, logs."
  value       = merge({ for k, b in module.bucket : k => b.arn }, { logs = module.logs.arn })
}
