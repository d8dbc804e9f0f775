# Definitions only: values are put by the owner of each credential
# (docs/runbooks/rotate-a-secret.md), never by Terraform, so no value is in state or code.
resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:Source credentials (CRM token, database password) are issued by the source systems' owners; rotation is their schedule, followed by docs/runbooks/rotate-a-secret.md, not a Lambda of ours.
  for_each = var.secrets

  name                    = each.key
  description             = each.value
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}
