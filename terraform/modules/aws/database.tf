# Optional RDS PostgreSQL (create_database): private, encrypted, TLS only; DATABASE_URL is built
# from it in outputs.tf.

locals {
  database_count = var.create_database ? 1 : 0
}

resource "random_password" "database" {
  count = local.database_count

  length = 40
  # URL-safe, so DATABASE_URL needs no escaping.
  special = false
}

resource "aws_db_subnet_group" "this" {
  count = local.database_count

  name       = "${var.name}-db"
  subnet_ids = var.database_subnet_ids
}

resource "aws_security_group" "database" {
  count = local.database_count

  name        = "${var.name}-db"
  description = "PostgreSQL of container_manager: reachable from the function only"
  vpc_id      = var.vpc_id

  ingress {
    description     = "PostgreSQL from the function's security groups"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = var.database_client_security_group_ids
  }

  ingress {
    description     = "PostgreSQL from RDS Proxy"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = [aws_security_group.proxy[0].id]
  }
}

# TLS only, and every statement that changes data logged.
resource "aws_db_parameter_group" "this" {
  count = local.database_count

  name   = "${var.name}-postgres${var.db_engine_version}"
  family = "postgres${var.db_engine_version}"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_statement"
    value = "mod"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
}

resource "aws_kms_key" "database" {
  count = local.database_count

  description             = "${var.name}: RDS storage and Performance Insights encryption"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.database_key.json
}

# The default key policy, written out: the account administers the key through IAM; RDS uses
# it through grants made on the account's behalf.
data "aws_iam_policy_document" "database_key" {
  # A key policy's "*" resource means "this key", nothing else: the check reads it as any resource.
  #checkov:skip=CKV_AWS_109:key policy; resource "*" is the key itself
  #checkov:skip=CKV_AWS_111:key policy; resource "*" is the key itself
  #checkov:skip=CKV_AWS_356:key policy; resource "*" is the key itself
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }
}

# Who may assume the database's two roles: enhanced monitoring's, and RDS Proxy's (connections.tf).
data "aws_iam_policy_document" "rds_assume" {
  for_each = {
    monitoring = "monitoring.rds.amazonaws.com"
    proxy      = "rds.amazonaws.com"
  }

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [each.value]
    }
  }
}

# Enhanced monitoring publishes OS metrics through this role.
resource "aws_iam_role" "rds_monitoring" {
  count = local.database_count

  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_assume["monitoring"].json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  count = local.database_count

  role       = aws_iam_role.rds_monitoring[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "this" {
  count = local.database_count

  identifier     = var.name
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class
  db_name        = "container_manager"
  username       = "container_manager"
  password       = random_password.database[0].result

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_allocated_storage * 5
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.database[0].arn

  db_subnet_group_name   = aws_db_subnet_group.this[0].name
  vpc_security_group_ids = [aws_security_group.database[0].id]
  publicly_accessible    = false
  multi_az               = var.db_multi_az
  parameter_group_name   = aws_db_parameter_group.this[0].name

  iam_database_authentication_enabled = true
  auto_minor_version_upgrade          = true
  backup_retention_period             = var.db_backup_retention_days
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.db_deletion_protection
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-final"

  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring[0].arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.database[0].arn
  performance_insights_retention_period = 7
}
