variable "name" {
  description = "Globally unique bucket name."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for default SSE-KMS encryption; null gives SSE-S3 (only for an access-log bucket, which S3 requires)."
  type        = string
  default     = null
}

variable "access_logging" {
  description = "Log S3 server access to access_log_bucket (false only for the access-log bucket itself)."
  type        = bool
  default     = true
}

variable "access_log_bucket" {
  description = "Bucket receiving this bucket's S3 server access logs (under s3/<name>/)."
  type        = string
  default     = null
}

variable "access_log_source_account_ids" {
  description = "Accounts whose buckets may deliver S3 server access logs into this bucket (set on the access-log bucket only)."
  type        = list(string)
  default     = []
}

variable "glacier_transition_days" {
  description = "Move current objects to Glacier Instant Retrieval after this many days; null keeps them in Standard."
  type        = number
  default     = null
}

variable "expiration_days" {
  description = "Expire current objects after this many days; null keeps them."
  type        = number
  default     = null
}

variable "noncurrent_version_expiration_days" {
  description = "Delete noncurrent object versions after this many days."
  type        = number
  default     = 30
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Abort incomplete multipart uploads after this many days."
  type        = number
  default     = 7
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete a non-empty bucket (never in prod)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for the bucket."
  type        = map(string)
  default     = {}
}
