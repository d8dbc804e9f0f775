variable "env" {
  description = "Environment name."
  type        = string
}

variable "region" {
  description = "AWS region (config emr.region)."
  type        = string
}

variable "allowed_account_ids" {
  description = "Accounts this configuration may touch (guards against applying dev to prod)."
  type        = list(string)
}

variable "vpc_id" {
  description = "VPC of the private subnets; null runs EMR Serverless without VPC access."
  type        = string
  default     = null
}

variable "private_subnet_ids" {
  description = "Private subnets of the EMR workers."
  type        = list(string)
  default     = []
}

variable "emr_egress_rules" {
  description = "TCP egress of the EMR workers."
  type = list(object({
    port        = number
    cidr_ipv4   = string
    description = string
  }))
}

variable "emr_maximum_capacity" {
  description = "Maximum cumulative capacity of the EMR Serverless application."
  type = object({
    cpu    = string
    memory = string
    disk   = string
  })
}

variable "emr_initial_capacity" {
  description = "Pre-initialised workers by type; empty for none."
  type = map(object({
    worker_count = number
    cpu          = string
    memory       = string
    disk         = optional(string, "20 GB")
  }))
  default = {}
}

variable "mwaa_enabled" {
  description = "Create an MWAA environment."
  type        = bool
}

variable "mwaa_subnet_ids" {
  description = "Two private subnets for MWAA."
  type        = list(string)
  default     = []
}

variable "airflow_trusted_role_arns" {
  description = "Roles of a self-managed Airflow that may assume the Airflow role."
  type        = list(string)
  default     = []
}

variable "alarm_emails" {
  description = "E-mail subscribers of the alarm topic."
  type        = list(string)
  default     = []
}

variable "alarm_thresholds" {
  description = "Alarm threshold overrides by alarm id."
  type        = map(number)
  default     = {}
}

variable "freshness_hours" {
  description = "Freshness SLA of gold.customer_360 (config orchestration.freshness_hours)."
  type        = number
}

variable "force_destroy" {
  description = "Let destroy empty the buckets."
  type        = bool
}

variable "deletion_protection" {
  description = "Deletion protection of the Delta log store table."
  type        = bool
}

variable "secret_recovery_window_in_days" {
  description = "Days a deleted secret can be restored."
  type        = number
}

variable "log_retention_days" {
  description = "Retention of the job log group."
  type        = number
}
