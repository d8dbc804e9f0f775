variable "name_prefix" {
  description = "Role name prefix, e.g. lakehouse-dev (roles: <prefix>-emr-job, <prefix>-airflow)."
  type        = string
}

variable "bucket_arns" {
  description = "Lake bucket ARNs by role (landing, bronze, silver, gold, artifacts), from the data_lake module."
  type        = map(string)

  validation {
    condition     = alltrue([for k in ["landing", "bronze", "silver", "gold", "artifacts"] : contains(keys(var.bucket_arns), k)])
    error_message = "bucket_arns needs landing, bronze, silver, gold and artifacts."
  }
}

variable "ops_prefix" {
  description = "Prefix in the artifacts bucket for run summaries, lineage and control files (the config's storage.root)."
  type        = string
  default     = "ops"
}

variable "emr_application_arn" {
  description = "ARN of the EMR Serverless application the job role serves (trust SourceArn)."
  type        = string
}

variable "glue_database_names" {
  description = "Glue Data Catalog databases the jobs create and update tables in."
  type        = list(string)
}

variable "secret_arns" {
  description = "Secrets Manager secrets the jobs read (source credentials)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "The platform KMS key (buckets, secrets, logs, log store)."
  type        = string
}

variable "delta_log_table_arn" {
  description = "DynamoDB table of Delta's S3DynamoDBLogStore."
  type        = string
}

variable "job_log_group_name" {
  description = "CloudWatch log group of the EMR Serverless job runs."
  type        = string
}

variable "metrics_namespace" {
  description = "CloudWatch namespace the jobs publish their run metrics to."
  type        = string
}

variable "alarm_topic_arn" {
  description = "SNS topic Airflow publishes task failures to."
  type        = string
}

variable "mwaa_environment_name" {
  description = "Name of the MWAA environment using the Airflow role; null when Airflow is self-managed."
  type        = string
  default     = null
}

variable "mwaa_bucket_arn" {
  description = "Bucket holding the MWAA DAGs and requirements (with mwaa_environment_name)."
  type        = string
  default     = null
}

variable "airflow_trusted_role_arns" {
  description = "IAM roles of a self-managed Airflow allowed to assume the Airflow role."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for the roles."
  type        = map(string)
  default     = {}
}
