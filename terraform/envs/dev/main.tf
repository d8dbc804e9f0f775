provider "aws" {
  region = var.region

  allowed_account_ids = var.allowed_account_ids
}

module "platform" {
  source = "../../modules/platform"

  env            = var.env
  monitoring_dir = "${path.root}/../../../monitoring"

  vpc_id             = var.vpc_id
  private_subnet_ids = var.private_subnet_ids
  emr_egress_rules   = var.emr_egress_rules

  emr_maximum_capacity = var.emr_maximum_capacity
  emr_initial_capacity = var.emr_initial_capacity

  mwaa_enabled              = var.mwaa_enabled
  mwaa_subnet_ids           = var.mwaa_subnet_ids
  airflow_trusted_role_arns = var.airflow_trusted_role_arns

  alarm_emails     = var.alarm_emails
  alarm_thresholds = var.alarm_thresholds
  freshness_hours  = var.freshness_hours

  force_destroy                  = var.force_destroy
  deletion_protection            = var.deletion_protection
  secret_recovery_window_in_days = var.secret_recovery_window_in_days
  log_retention_days             = var.log_retention_days
}
