variable "name" {
  description = "Application name, e.g. lakehouse-dev."
  type        = string
}

variable "release_label" {
  description = "EMR release; the project is pinned to emr-spark-8.2.0 (Spark 4.1.3, Delta 4.2.0), see docs/adr/0001-runtime-pins.md."
  type        = string
  default     = "emr-spark-8.2.0"
}

variable "architecture" {
  description = "CPU architecture of the workers: X86_64 or ARM64 (the Python venv archive must be built for it)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.architecture)
    error_message = "architecture must be X86_64 or ARM64."
  }
}

variable "maximum_capacity" {
  description = "Upper bound of the application's cumulative capacity across all runs."
  type = object({
    cpu    = string
    memory = string
    disk   = string
  })
  default = { cpu = "64 vCPU", memory = "256 GB", disk = "1000 GB" }
}

variable "idle_timeout_minutes" {
  description = "Auto-stop after this many idle minutes (auto-start on job submission is always on)."
  type        = number
  default     = 15
}

variable "initial_capacity" {
  description = "Pre-initialised workers by type (Driver, Executor); empty for none (cold start, lowest cost)."
  type = map(object({
    worker_count = number
    cpu          = string
    memory       = string
    disk         = optional(string, "20 GB")
  }))
  default = {}
}

variable "vpc_id" {
  description = "VPC of the private subnets; null runs without VPC access (no private sources reachable)."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Private subnets for the workers (with NAT or VPC endpoints for S3, Glue, Secrets Manager, CloudWatch)."
  type        = list(string)
  default     = []
}

variable "egress_rules" {
  description = "TCP egress allowed from the workers: HTTPS for AWS APIs and the CRM, the source database and Kafka ports to their CIDRs."
  type = list(object({
    port        = number
    cidr_ipv4   = string
    description = string
  }))
  default = [{ port = 443, cidr_ipv4 = "0.0.0.0/0", description = "HTTPS: AWS APIs (S3, Glue, Secrets Manager, CloudWatch) and the CRM API" }]
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
