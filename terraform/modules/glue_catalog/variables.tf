variable "env" {
  description = "Environment name (dev, prod), for descriptions."
  type        = string
}

variable "databases" {
  description = "Database name -> default location (s3://bucket), e.g. { bronze = \"s3://lakehouse-dev-bronze\" }."
  type        = map(string)
}

variable "tags" {
  description = "Tags for the databases."
  type        = map(string)
  default     = {}
}
