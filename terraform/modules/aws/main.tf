# AWS resources that run container jobs and carry steps: the ECS cluster and Fargate task
# definition (executor_type "fargate"), their log group, and the SQS step queue with its DLQ.

data "aws_caller_identity" "this" {}
data "aws_region" "this" {}
data "aws_partition" "this" {}

locals {
  account   = data.aws_caller_identity.this.account_id
  region    = data.aws_region.this.name
  partition = data.aws_partition.this.partition
  # The awslogs stream of a task is <prefix>/<container>/<task id>: the executor reads it back.
  log_stream_prefix = "ecs"
}

# One key for the log groups: CloudWatch Logs encrypts with it, readers need no KMS permission.
resource "aws_kms_key" "logs" {
  description             = "${var.name}: CloudWatch Logs encryption"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.logs_key.json
}

resource "aws_kms_alias" "logs" {
  name          = "alias/${var.name}-logs"
  target_key_id = aws_kms_key.logs.key_id
}

data "aws_iam_policy_document" "logs_key" {
  # A key policy's "*" resource means "this key", nothing else: the check reads it as any resource.
  #checkov:skip=CKV_AWS_109:key policy; resource "*" is the key itself
  #checkov:skip=CKV_AWS_111:key policy; resource "*" is the key itself
  #checkov:skip=CKV_AWS_356:key policy; resource "*" is the key itself
  # The account administers the key through IAM (the default key policy).
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }

  # CloudWatch Logs uses it for this account's log groups only.
  statement {
    sid = "CloudWatchLogsEncrypts"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:*"]
    }
  }
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "jobs" {
  name              = "/ecs/${var.name}-jobs"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn
}

# The template of every job: the launch step overrides command, environment, cpu and memory.
resource "aws_ecs_task_definition" "jobs" {
  family                   = "${var.name}-jobs"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.task_execution.arn
  task_role_arn            = aws_iam_role.task.arn

  container_definitions = jsonencode([
    {
      name                   = var.container_name
      image                  = var.task_image
      essential              = true
      readonlyRootFilesystem = var.readonly_root_filesystem
      # Container-level memory: moto and the size mapping read it; runs override it.
      memory = var.task_memory
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.jobs.name
          awslogs-region        = local.region
          awslogs-stream-prefix = local.log_stream_prefix
        }
      }
    }
  ])
}

# Steps: a standard queue (FIFO cannot delay single messages), consumed by the function.
resource "aws_sqs_queue" "steps" {
  name                       = "${var.name}-steps"
  visibility_timeout_seconds = var.queue_visibility_timeout_seconds
  message_retention_seconds  = var.queue_message_retention_seconds
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.steps_dlq.arn
    maxReceiveCount     = var.dlq_max_receive_count
  })
}

resource "aws_sqs_queue" "steps_dlq" {
  name                      = "${var.name}-steps-dlq"
  message_retention_seconds = var.dlq_message_retention_seconds
  sqs_managed_sse_enabled   = true
}

# Only the step queue may send its dead letters here.
resource "aws_sqs_queue_redrive_allow_policy" "steps_dlq" {
  queue_url = aws_sqs_queue.steps_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.steps.arn]
  })
}

# The function's own log group, created here so it has a retention and the key.
resource "aws_cloudwatch_log_group" "lambda" {
  name              = "/aws/lambda/${var.lambda_function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn
}

# DJANGO_SECRET_KEY of the function: generated once, kept in the state (mark the state secret).
resource "random_password" "django_secret_key" {
  length  = 64
  special = true
}
