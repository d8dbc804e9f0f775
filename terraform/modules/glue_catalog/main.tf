resource "aws_glue_catalog_database" "this" {
  for_each = var.databases

  name         = each.key
  description  = "Lakehouse ${each.key} layer (${var.env}): Delta tables"
  location_uri = each.value
  tags         = var.tags
}
