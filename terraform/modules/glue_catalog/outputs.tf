output "database_names" {
  description = "Names of the Glue databases."
  value       = [for db in aws_glue_catalog_database.this : db.name]
}

output "database_arns" {
  description = "ARNs of the Glue databases."
  value       = [for db in aws_glue_catalog_database.this : db.arn]
}
