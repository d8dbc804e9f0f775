locals {
  in_vpc = var.vpc_id != null
}

resource "aws_security_group" "this" {
  #checkov:skip=CKV2_AWS_5:Attached to the EMR Serverless application's network_configuration below, a connection checkov's graph does not model.
  count = local.in_vpc ? 1 : 0

  name        = "${var.name}-emr-serverless"
  description = "EMR Serverless workers of ${var.name}: egress only, to the listed destinations"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each = local.in_vpc ? { for rule in var.egress_rules : "${rule.port}-${rule.cidr_ipv4}" => rule } : {}

  security_group_id = aws_security_group.this[0].id
  description       = each.value.description
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr_ipv4
}

resource "aws_emrserverless_application" "this" {
  name          = var.name
  release_label = var.release_label
  type          = "SPARK"
  architecture  = var.architecture

  maximum_capacity {
    cpu    = var.maximum_capacity.cpu
    memory = var.maximum_capacity.memory
    disk   = var.maximum_capacity.disk
  }

  auto_start_configuration {
    enabled = true
  }

  auto_stop_configuration {
    enabled              = true
    idle_timeout_minutes = var.idle_timeout_minutes
  }

  dynamic "initial_capacity" {
    for_each = var.initial_capacity
    content {
      initial_capacity_type = initial_capacity.key
      initial_capacity_config {
        worker_count = initial_capacity.value.worker_count
        worker_configuration {
          cpu    = initial_capacity.value.cpu
          memory = initial_capacity.value.memory
          disk   = initial_capacity.value.disk
        }
      }
    }
  }

  dynamic "network_configuration" {
    for_each = local.in_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = [aws_security_group.this[0].id]
    }
  }

  tags = var.tags
}
