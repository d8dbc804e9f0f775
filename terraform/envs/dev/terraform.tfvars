# Development account. Network ids are the shared dev VPC's; the lake is disposable.
env                 = "dev"
region              = "eu-west-1"
allowed_account_ids = ["111111111111"]

vpc_id             = "vpc-0d0e0a0d0e0a0d0e0"
private_subnet_ids = ["subnet-0d0e0a0d0e0a0d0e1", "subnet-0d0e0a0d0e0a0d0e2"]
emr_egress_rules = [
  { port = 443, cidr_ipv4 = "0.0.0.0/0", description = "HTTPS: AWS APIs and the CRM API" },
  { port = 5432, cidr_ipv4 = "10.10.0.0/16", description = "operational database (opdb)" },
  { port = 9094, cidr_ipv4 = "10.10.0.0/16", description = "Kafka brokers (TLS)" },
]

emr_maximum_capacity = { cpu = "32 vCPU", memory = "128 GB", disk = "500 GB" }

mwaa_enabled              = false # dev DAGs run on the team's own Airflow
airflow_trusted_role_arns = []

freshness_hours = 26

force_destroy                  = true
deletion_protection            = false
secret_recovery_window_in_days = 7
log_retention_days             = 365
