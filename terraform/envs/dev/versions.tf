terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.100.0"
    }
  }

  # Remote state in the account's state bucket (terraform/bootstrap), locked with S3
  # conditional writes (use_lockfile); bucket, key and region in backend.hcl:
  #   terraform init -backend-config=backend.hcl
  backend "s3" {}
}
