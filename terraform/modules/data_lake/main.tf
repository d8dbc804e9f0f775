data "aws_caller_identity" "current" {}

locals {
  # Lifecycle per bucket: bronze ages into Glacier Instant Retrieval (still readable by
  # Spark for replays and time travel); landing drops expire once Bronze holds them.
  buckets = {
    landing   = { glacier_transition_days = null, expiration_days = var.landing_expiration_days }
    bronze    = { glacier_transition_days = var.bronze_glacier_transition_days, expiration_days = null }
    silver    = { glacier_transition_days = null, expiration_days = null }
    gold      = { glacier_transition_days = null, expiration_days = null }
    artifacts = { glacier_transition_days = null, expiration_days = null }
  }
}

module "logs" {
  source = "../s3_bucket"

  name                               = "${var.name_prefix}-logs"
  access_logging                     = false
  access_log_source_account_ids      = [data.aws_caller_identity.current.account_id]
  expiration_days                    = var.log_expiration_days
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  force_destroy                      = var.force_destroy
  tags                               = var.tags
}

module "bucket" {
  source   = "../s3_bucket"
  for_each = local.buckets

  name                               = "${var.name_prefix}-${each.key}"
  kms_key_arn                        = var.kms_key_arn
  access_log_bucket                  = module.logs.name
  glacier_transition_days            = each.value.glacier_transition_days
  expiration_days                    = each.value.expiration_days
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  force_destroy                      = var.force_destroy
  tags                               = var.tags
}
