variable "secrets" {
  description = "Secret name -> description, e.g. { \"lakehouse/dev/opdb\" = \"Operational DB reader password\" }."
  type        = map(string)
}

variable "kms_key_arn" {
  description = "KMS key encrypting the secrets."
  type        = string
}

variable "recovery_window_in_days" {
  description = "Days a deleted secret can still be restored (0 deletes at once; 7 to 30 otherwise)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for the secrets."
  type        = map(string)
  default     = {}
}
