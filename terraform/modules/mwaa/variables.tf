variable "name" {
  description = "Environment name, e.g. lakehouse-prod (its bucket is <name>-airflow)."
  type        = string
}

variable "airflow_version" {
  description = "MWAA Airflow version; the DAGs are tested on 3.0.6 with its providers (make test-extended) and on 3.3."
  type        = string
  default     = "3.0.6"
}

variable "environment_class" {
  description = "MWAA environment class (mw1.micro, mw1.small, mw1.medium, ...)."
  type        = string
  default     = "mw1.small"
}

variable "min_workers" {
  description = "Minimum Celery workers."
  type        = number
  default     = 1
}

variable "max_workers" {
  description = "Maximum Celery workers."
  type        = number
  default     = 2
}

variable "execution_role_arn" {
  description = "The Airflow role (iam_roles module)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for MWAA's data and its bucket."
  type        = string
}

variable "access_log_bucket" {
  description = "Bucket receiving the MWAA bucket's S3 access logs."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the private subnets."
  type        = string
}

variable "subnet_ids" {
  description = "Exactly two private subnets in different availability zones (MWAA's requirement)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) == 2
    error_message = "MWAA needs exactly two private subnets."
  }
}

variable "force_destroy" {
  description = "Allow terraform destroy to empty the DAG bucket (dev only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}

variable "environment_variables" {
  description = "Exported to every Airflow component by the environment's startup script: LAKEHOUSE_ENV and the LAKEHOUSE__* job configuration the DAG files read."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.environment_variables) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "environment variable names must be upper-case shell names."
  }
}
