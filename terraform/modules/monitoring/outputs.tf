output "job_log_group_name" {
  description = "Log group of the EMR Serverless job runs (config emr.log_group)."
  value       = aws_cloudwatch_log_group.jobs.name
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms and Airflow task failures (config orchestration.failure_topic_arn)."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_names" {
  description = "Names of the CloudWatch alarms."
  value       = [for a in aws_cloudwatch_metric_alarm.this : a.alarm_name]
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}
