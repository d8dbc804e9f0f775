# Once per account, with local state: the bucket holding every environment's remote
# state (terraform/envs/<env>/backend.hcl). Locking uses S3 conditional writes
# (use_lockfile), so no DynamoDB lock table is needed.
terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.100.0"
    }
  }
}

provider "aws" {
  region = var.region
}

data "aws_caller_identity" "current" {}

module "state_key" {
  source = "../modules/kms_key"

  name        = "lakehouse-tfstate"
  description = "Terraform state of the lakehouse environments"
}

module "state_logs" {
  source = "../modules/s3_bucket"

  name                          = "lakehouse-tfstate-${data.aws_caller_identity.current.account_id}-logs"
  access_logging                = false
  access_log_source_account_ids = [data.aws_caller_identity.current.account_id]
  expiration_days               = 365
}

module "state_bucket" {
  source = "../modules/s3_bucket"

  name                               = "lakehouse-tfstate-${data.aws_caller_identity.current.account_id}"
  kms_key_arn                        = module.state_key.key_arn
  access_log_bucket                  = module.state_logs.name
  noncurrent_version_expiration_days = 90
}

variable "region" {
  description = "Region of the state bucket."
  type        = string
  default     = "eu-west-1"
}

output "state_bucket" {
  description = "State bucket name (backend.hcl bucket)."
  value       = module.state_bucket.name
}
