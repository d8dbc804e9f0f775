variable "name_prefix" {
  description = "Bucket name prefix, e.g. lakehouse-dev; buckets are <prefix>-landing, -bronze, -silver, -gold, -artifacts, -logs."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS on every bucket but the access-log bucket."
  type        = string
}

variable "bronze_glacier_transition_days" {
  description = "Days after which Bronze objects move to Glacier Instant Retrieval."
  type        = number
  default     = 90
}

variable "landing_expiration_days" {
  description = "Days after which file drops in the landing bucket expire (Bronze keeps the data)."
  type        = number
  default     = 30
}

variable "log_expiration_days" {
  description = "Days after which S3 access logs expire."
  type        = number
  default     = 365
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which noncurrent object versions are deleted (the window for recovering an overwritten or deleted object)."
  type        = number
  default     = 30
}

variable "force_destroy" {
  description = "Allow terraform destroy to empty the buckets (dev only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every bucket."
  type        = map(string)
  default     = {}
}
