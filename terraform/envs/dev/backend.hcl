# terraform init -backend-config=backend.hcl (state bucket: terraform/bootstrap)
bucket       = "lakehouse-tfstate-111111111111"
key          = "lakehouse/dev/terraform.tfstate"
region       = "eu-west-1"
encrypt      = true
use_lockfile = true
