locals {
  # alarms.json holds the definitions and default thresholds; an environment overrides
  # a threshold by alarm id (var.alarm_thresholds).
  alarms = { for a in var.alarm_definitions : a.id => a }
  # Every run publishes under the dimension sets {Env}, {Env, Layer} and {Env, Job}
  # (jobs/common/metrics.py); an alarm picks one by its dimensions.
  dashboard = jsondecode(templatefile(var.dashboard_template_path, {
    namespace = var.metrics_namespace
    env       = var.env
    region    = var.region
    log_group = aws_cloudwatch_log_group.jobs.name
    sla_hours = var.freshness_hours
  }))
  # the alarm status row lists the alarms created here, above the template's widgets
  alarm_widget = {
    type       = "alarm"
    x          = 0
    y          = 0
    width      = 24
    height     = 3
    properties = { title = "Alarms", alarms = [for a in aws_cloudwatch_metric_alarm.this : a.arn] }
  }
  dashboard_body = jsonencode(merge(local.dashboard, {
    widgets = concat([local.alarm_widget], [for w in local.dashboard.widgets : merge(w, { y = w.y + 3 })])
  }))
}

resource "aws_cloudwatch_log_group" "jobs" {
  name              = "/aws/emr-serverless/${var.name_prefix}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = "${each.value.description} Runbook: ${each.value.runbook}"
  namespace           = var.metrics_namespace
  metric_name         = each.value.metric
  dimensions          = merge({ Env = var.env }, each.value.dimensions)
  statistic           = each.value.statistic
  period              = each.value.period_seconds
  evaluation_periods  = each.value.evaluation_periods
  comparison_operator = each.value.comparison
  threshold           = lookup(var.alarm_thresholds, each.key, each.value.threshold)
  treat_missing_data  = each.value.treat_missing_data
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name_prefix
  dashboard_body = local.dashboard_body
}
