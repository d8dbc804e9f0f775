variable "name_prefix" {
  description = "Name prefix, e.g. lakehouse-dev (log group, topic, alarm and dashboard names)."
  type        = string
}

variable "env" {
  description = "Environment name: the Env dimension of the run metrics."
  type        = string
}

variable "region" {
  description = "Region of the dashboard's widgets."
  type        = string
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the run metrics (config monitoring.namespace)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for the log group and the SNS topic."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the job log group (a CloudWatch Logs retention value; 365 or more for audit)."
  type        = number
  default     = 365
}

variable "alarm_definitions" {
  description = "Alarms, as in monitoring/alarms.json (jsondecode of its alarms list)."
  type = list(object({
    id                 = string
    description        = string
    runbook            = string
    metric             = string
    dimensions         = map(string)
    statistic          = string
    period_seconds     = number
    evaluation_periods = number
    comparison         = string
    threshold          = number
    treat_missing_data = string
  }))
}

variable "alarm_thresholds" {
  description = "Threshold overrides by alarm id (e.g. a tighter freshness SLA in prod)."
  type        = map(number)
  default     = {}
}

variable "dashboard_template_path" {
  description = "Path of monitoring/dashboard.json (JSON templatefile with namespace, env, region, log_group, sla_hours; an alarm status row is added on top)."
  type        = string
}

variable "freshness_hours" {
  description = "Freshness SLA of gold.customer_360 in hours (shown on the dashboard)."
  type        = number
  default     = 26
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic (each must confirm)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
