variable "name" {
  description = "Table name, e.g. lakehouse-dev-delta-log (spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for server-side encryption."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to delete the table (on in prod: losing it while writers run can lose commits)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for the table."
  type        = map(string)
  default     = {}
}
