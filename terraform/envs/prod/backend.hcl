# terraform init -backend-config=backend.hcl (state bucket: terraform/bootstrap)
bucket       = "lakehouse-tfstate-222222222222"
key          = "lakehouse/prod/terraform.tfstate"
region       = "eu-west-1"
encrypt      = true
use_lockfile = true
