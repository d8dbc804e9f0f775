variable "env" {
  description = "Environment: dev or prod (names are lakehouse-<env>-*; the job config is config/<env>.yaml)."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.env)
    error_message = "env must be dev or prod."
  }
}

variable "monitoring_dir" {
  description = "Path of the repository's monitoring/ folder (alarms.json, dashboard.json)."
  type        = string
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the run metrics (config monitoring.namespace)."
  type        = string
  default     = "Lakehouse"
}

variable "ops_prefix" {
  description = "Prefix in the artifacts bucket for run summaries, lineage and control files."
  type        = string
  default     = "ops"
}

variable "bronze_glacier_transition_days" {
  description = "Days after which Bronze objects move to Glacier Instant Retrieval."
  type        = number
  default     = 90
}

variable "force_destroy" {
  description = "Let terraform destroy empty the buckets (dev only)."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Deletion protection of the Delta log store table."
  type        = bool
  default     = true
}

variable "secret_recovery_window_in_days" {
  description = "Days a deleted secret can be restored (0: at once, dev only)."
  type        = number
  default     = 30
}

variable "emr_release_label" {
  description = "EMR Serverless release (pinned: docs/adr/0001-runtime-pins.md)."
  type        = string
  default     = "emr-spark-8.2.0"
}

variable "emr_architecture" {
  description = "Worker architecture: X86_64 or ARM64."
  type        = string
  default     = "X86_64"
}

variable "emr_maximum_capacity" {
  description = "Maximum cumulative capacity of the EMR Serverless application."
  type = object({
    cpu    = string
    memory = string
    disk   = string
  })
  default = { cpu = "64 vCPU", memory = "256 GB", disk = "1000 GB" }
}

variable "emr_idle_timeout_minutes" {
  description = "Auto-stop the application after this many idle minutes."
  type        = number
  default     = 15
}

variable "emr_initial_capacity" {
  description = "Pre-initialised workers by type (Driver, Executor); empty for none."
  type = map(object({
    worker_count = number
    cpu          = string
    memory       = string
    disk         = optional(string, "20 GB")
  }))
  default = {}
}

variable "emr_egress_rules" {
  description = "TCP egress of the EMR workers (with a VPC)."
  type = list(object({
    port        = number
    cidr_ipv4   = string
    description = string
  }))
  default = [{ port = 443, cidr_ipv4 = "0.0.0.0/0", description = "HTTPS: AWS APIs and the CRM API" }]
}

variable "vpc_id" {
  description = "VPC for EMR Serverless and MWAA; null runs EMR without VPC access."
  type        = string
  default     = null
}

variable "private_subnet_ids" {
  description = "Private subnets of the EMR workers."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Retention of the job log group."
  type        = number
  default     = 365
}

variable "alarm_thresholds" {
  description = "Alarm threshold overrides by alarm id (monitoring/alarms.json)."
  type        = map(number)
  default     = {}
}

variable "freshness_hours" {
  description = "Freshness SLA of gold.customer_360 in hours (config orchestration.freshness_hours)."
  type        = number
  default     = 26
}

variable "alarm_emails" {
  description = "E-mail subscribers of the alarm topic."
  type        = list(string)
  default     = []
}

variable "mwaa_enabled" {
  description = "Create an MWAA environment; off for teams running their own Airflow."
  type        = bool
  default     = false
}

variable "mwaa_subnet_ids" {
  description = "Two private subnets for MWAA (with mwaa_enabled)."
  type        = list(string)
  default     = []
}

variable "mwaa_environment_class" {
  description = "MWAA environment class."
  type        = string
  default     = "mw1.small"
}

variable "mwaa_max_workers" {
  description = "Maximum MWAA workers."
  type        = number
  default     = 2
}

variable "airflow_trusted_role_arns" {
  description = "Roles of a self-managed Airflow that may assume the Airflow role."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
