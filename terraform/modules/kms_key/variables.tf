variable "name" {
  description = "Alias of the key (without the alias/ prefix), e.g. lakehouse-dev."
  type        = string
}

variable "description" {
  description = "What the key protects."
  type        = string
}

variable "rotation_period_in_days" {
  description = "Automatic rotation period of the key material (90 to 2560 days)."
  type        = number
  default     = 365

  validation {
    condition     = var.rotation_period_in_days >= 90 && var.rotation_period_in_days <= 2560
    error_message = "rotation_period_in_days must be between 90 and 2560."
  }
}

variable "deletion_window_in_days" {
  description = "Waiting period before a scheduled key deletion takes effect (7 to 30 days)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
