# Production account: MWAA, a warm driver, longer retention, nothing destroyable.
env                 = "prod"
region              = "eu-west-1"
allowed_account_ids = ["222222222222"]

vpc_id             = "vpc-0b0a0d0b0a0d0b0a0"
private_subnet_ids = ["subnet-0b0a0d0b0a0d0b0a1", "subnet-0b0a0d0b0a0d0b0a2", "subnet-0b0a0d0b0a0d0b0a3"]
emr_egress_rules = [
  { port = 443, cidr_ipv4 = "0.0.0.0/0", description = "HTTPS: AWS APIs and the CRM API" },
  { port = 5432, cidr_ipv4 = "10.20.0.0/16", description = "operational database (opdb)" },
  { port = 9094, cidr_ipv4 = "10.20.0.0/16", description = "Kafka brokers (TLS)" },
]

emr_maximum_capacity = { cpu = "200 vCPU", memory = "800 GB", disk = "4000 GB" }
emr_initial_capacity = {
  Driver = { worker_count = 1, cpu = "2 vCPU", memory = "8 GB" }
}

mwaa_enabled    = true
mwaa_subnet_ids = ["subnet-0b0a0d0b0a0d0b0a1", "subnet-0b0a0d0b0a0d0b0a2"]

alarm_emails     = ["data-platform-oncall@example.com"]
alarm_thresholds = { "freshness-over-sla" = 93600 }
freshness_hours  = 26

force_destroy                  = false
deletion_protection            = true
secret_recovery_window_in_days = 30
log_retention_days             = 731
