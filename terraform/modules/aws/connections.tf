# The connection budget (db_connection_budget): every Lambda instance keeps one connection
# (DATABASE_CONN_MAX_AGE), so the number of instances is the number of connections. The function's
# reserved concurrency (zappa lambda_concurrency) is the budget; the SQS event source may use all
# of it but the `interactive_reserve` kept for the sweep, the admin and the API. With
# create_database, RDS Proxy sits in front of the instance and holds at most
# `proxy_max_connections_percent` of its max_connections whatever the clients do.

locals {
  # Instances left to the sweep, the admin and the API when a burst fills the queue.
  interactive_reserve = 2
  # Lambda refuses a maximum concurrency below 2.
  sqs_maximum_concurrency     = max(2, var.db_connection_budget - local.interactive_reserve)
  lambda_reserved_concurrency = var.db_connection_budget
  proxy_count                 = var.create_database ? 1 : 0
}

# The step queue's event source, made here because zappa cannot set its maximum concurrency
# or partial batch responses: zappa keeps the same event in zappa_settings.json (its handler
# routes the queue's records by it) and leaves a mapping that exists alone (deploy-aws.md).
resource "aws_lambda_event_source_mapping" "steps" {
  count = var.lambda_deployed ? 1 : 0

  function_name           = var.lambda_function_name
  event_source_arn        = aws_sqs_queue.steps.arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = local.sqs_maximum_concurrency
  }
}

# -- RDS Proxy (create_database) ----------------------------------------------------------

# The proxy logs in with the instance's credentials, read from this secret.
resource "aws_secretsmanager_secret" "database" {
  count = local.proxy_count
  #checkov:skip=CKV2_AWS_57:the password is Terraform's random_password, also in DATABASE_URL; rotating it here would lock the app out
  name        = "${var.name}-database"
  description = "container_manager: PostgreSQL credentials RDS Proxy logs in with"
  kms_key_id  = aws_kms_key.database[0].arn
}

resource "aws_secretsmanager_secret_version" "database" {
  count = local.proxy_count

  secret_id = aws_secretsmanager_secret.database[0].id
  secret_string = jsonencode({
    username = aws_db_instance.this[0].username
    password = random_password.database[0].result
  })
}

resource "aws_iam_role" "proxy" {
  count = local.proxy_count

  name               = "${var.name}-db-proxy"
  assume_role_policy = data.aws_iam_policy_document.rds_assume["proxy"].json
}

# The proxy reads the one secret, decrypting it through Secrets Manager only.
data "aws_iam_policy_document" "proxy" {
  count = local.proxy_count

  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.database[0].arn]
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.database[0].arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "proxy" {
  count = local.proxy_count

  name   = "${var.name}-db-proxy"
  role   = aws_iam_role.proxy[0].id
  policy = data.aws_iam_policy_document.proxy[0].json
}

# Its rules are separate resources: the instance's group names this one, and this one's egress
# names the instance's, which inline rules on both would make a cycle.
resource "aws_security_group" "proxy" {
  count = local.proxy_count
  #checkov:skip=CKV2_AWS_5:attached to aws_db_proxy.this (vpc_security_group_ids), a resource type the check does not list

  name        = "${var.name}-db-proxy"
  description = "RDS Proxy of container_manager: reachable from the function only"
  vpc_id      = var.vpc_id
}

resource "aws_security_group_rule" "proxy_from_function" {
  count = var.create_database ? length(var.database_client_security_group_ids) : 0

  description              = "PostgreSQL from the function's security groups"
  type                     = "ingress"
  from_port                = 5432
  to_port                  = 5432
  protocol                 = "tcp"
  security_group_id        = aws_security_group.proxy[0].id
  source_security_group_id = var.database_client_security_group_ids[count.index]
}

resource "aws_security_group_rule" "proxy_to_database" {
  count = local.proxy_count

  description              = "PostgreSQL to the instance"
  type                     = "egress"
  from_port                = 5432
  to_port                  = 5432
  protocol                 = "tcp"
  security_group_id        = aws_security_group.proxy[0].id
  source_security_group_id = aws_security_group.database[0].id
}

# TLS only; the app connects here (DATABASE_URL) with CM_DB_POOLER=transaction, so that it
# keeps no session state that would pin a client to one database connection.
resource "aws_db_proxy" "this" {
  count = local.proxy_count

  name                   = var.name
  engine_family          = "POSTGRESQL"
  role_arn               = aws_iam_role.proxy[0].arn
  vpc_subnet_ids         = var.database_subnet_ids
  vpc_security_group_ids = [aws_security_group.proxy[0].id]
  require_tls            = true
  idle_client_timeout    = 1800

  auth {
    auth_scheme               = "SECRETS"
    iam_auth                  = "DISABLED"
    client_password_auth_type = "POSTGRES_SCRAM_SHA_256"
    secret_arn                = aws_secretsmanager_secret.database[0].arn
  }

  depends_on = [aws_iam_role_policy.proxy, aws_secretsmanager_secret_version.database]
}

resource "aws_db_proxy_default_target_group" "this" {
  count = local.proxy_count

  db_proxy_name = aws_db_proxy.this[0].name

  connection_pool_config {
    max_connections_percent      = var.proxy_max_connections_percent
    max_idle_connections_percent = floor(var.proxy_max_connections_percent / 2)
    # A step waits this long for a database connection before it fails (and is retried).
    connection_borrow_timeout = 30
  }
}

resource "aws_db_proxy_target" "this" {
  count = local.proxy_count

  db_proxy_name          = aws_db_proxy.this[0].name
  target_group_name      = aws_db_proxy_default_target_group.this[0].name
  db_instance_identifier = aws_db_instance.this[0].identifier
}
