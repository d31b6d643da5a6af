# Roles: the task execution role (pull the image, write job logs), the task role (the job's own
# identity, no permissions), and the function's role with the policy the app needs.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    # Only tasks of this account may assume it (confused deputy).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "task_execution" {
  name               = "${var.name}-task-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

# Narrower than AmazonECSTaskExecutionRolePolicy: the job log group only, the listed repositories.
data "aws_iam_policy_document" "task_execution" {
  statement {
    sid       = "WriteJobLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.jobs.arn}:log-stream:*"]
  }

  dynamic "statement" {
    for_each = length(var.image_repository_arns) > 0 ? [1] : []
    content {
      sid       = "PullImages"
      actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
      resources = var.image_repository_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.image_repository_arns) > 0 ? [1] : []
    content {
      # GetAuthorizationToken has no resource type: "*" is the only value IAM accepts.
      sid       = "EcrLogin"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"]
    }
  }

  # Secret references of jobs (ECS reads them for the container's secrets at task start): one
  # statement per kind that has resources.
  dynamic "statement" {
    for_each = { for sid, grant in local.job_secret_grants : sid => grant if length(grant.resources) > 0 }
    content {
      sid       = statement.key
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
}

locals {
  job_secret_grants = {
    ReadJobSecrets = {
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [for arn in var.job_secret_arns : arn if length(regexall(":secretsmanager:", arn)) > 0]
    }
    ReadJobParameters = {
      actions   = ["ssm:GetParameters"]
      resources = [for arn in var.job_secret_arns : arn if length(regexall(":ssm:", arn)) > 0]
    }
    DecryptJobSecrets = {
      actions   = ["kms:Decrypt"]
      resources = var.job_secret_kms_key_arns
    }
  }
}

resource "aws_iam_role_policy" "task_execution" {
  name   = "${var.name}-task-execution"
  role   = aws_iam_role.task_execution.id
  policy = data.aws_iam_policy_document.task_execution.json
}

# The job's identity inside the container: attach what your jobs need to it.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

# -- The function (zappa: manage_roles false, role_name = this role) ----------------------

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = "${var.name}-lambda"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "lambda" {
  # RegisterTaskDefinition (jobs with secret references only) has no resource type: its "*" is
  # narrowed by the request tag condition and by PassRole, which the check does not read.
  #checkov:skip=CKV_AWS_111:RegisterTaskDefinition has no resource type; tag condition and PassRole narrow it
  #checkov:skip=CKV_AWS_356:RegisterTaskDefinition has no resource type; tag condition and PassRole narrow it
  # launch: run_task of this task definition (any revision), on this cluster only.
  statement {
    sid     = "RunJobTasks"
    actions = ["ecs:RunTask"]
    # The family, and the copies declaring secrets that launches register (<family>-cm-<hash>).
    resources = [
      "arn:${local.partition}:ecs:${local.region}:${local.account}:task-definition/${aws_ecs_task_definition.jobs.family}:*",
      "arn:${local.partition}:ecs:${local.region}:${local.account}:task-definition/${aws_ecs_task_definition.jobs.family}-cm-*:*",
    ]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.this.arn]
    }
  }

  # check, harvest, cancel, timeout: the cluster's tasks.
  statement {
    sid       = "WatchAndStopTasks"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account}:task/${aws_ecs_cluster.this.name}/*"]
  }

  # run_task tags the task with the job id and attempt (ecs:TagResource at creation only).
  statement {
    sid       = "TagTasksAtLaunch"
    actions   = ["ecs:TagResource"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account}:task/${aws_ecs_cluster.this.name}/*"]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  # A launch retried after a crash lists the tasks startedBy its launch key; ListTasks is
  # authorized against container instances, so it is scoped by the cluster condition.
  statement {
    sid       = "FindRetriedLaunches"
    actions   = ["ecs:ListTasks"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account}:container-instance/${aws_ecs_cluster.this.name}/*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.this.arn]
    }
  }

  # The size mapping and container name come from the task definition. DescribeTaskDefinition
  # supports no resource-level permission: "*" is the only value IAM accepts.
  statement {
    sid       = "ReadTaskDefinitions"
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  # A job with secret references runs a copy of the task definition declaring them, registered
  # at its first launch with the tag container_manager.managed=true. RegisterTaskDefinition has
  # no resource-level permission: "*" is the only value IAM accepts; the tag condition and
  # PassRole below (these two roles only) narrow it.
  dynamic "statement" {
    for_each = length(var.job_secret_arns) > 0 ? [1] : []
    content {
      sid       = "RegisterSecretDefinitions"
      actions   = ["ecs:RegisterTaskDefinition"]
      resources = ["*"]
      condition {
        test     = "StringEquals"
        variable = "aws:RequestTag/container_manager.managed"
        values   = ["true"]
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.job_secret_arns) > 0 ? [1] : []
    content {
      sid       = "TagSecretDefinitions"
      actions   = ["ecs:TagResource"]
      resources = ["arn:${local.partition}:ecs:${local.region}:${local.account}:task-definition/${aws_ecs_task_definition.jobs.family}-cm-*:*"]
      condition {
        test     = "StringEquals"
        variable = "ecs:CreateAction"
        values   = ["RegisterTaskDefinition"]
      }
    }
  }

  # run_task hands the task its two roles: these two only, and only to ECS tasks.
  statement {
    sid       = "PassTaskRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.task.arn, aws_iam_role.task_execution.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  # harvest: read the job's awslogs streams.
  statement {
    sid       = "ReadJobLogs"
    actions   = ["logs:GetLogEvents", "logs:FilterLogEvents", "logs:DescribeLogStreams"]
    resources = [aws_cloudwatch_log_group.jobs.arn, "${aws_cloudwatch_log_group.jobs.arn}:log-stream:*"]
  }

  # The SQS backend sends steps; the event source mapping receives and deletes them.
  statement {
    sid = "StepQueue"
    actions = [
      "sqs:SendMessage",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.steps.arn]
  }

  # The function's own logs, in the group created here (instead of AWSLambdaBasicExecutionRole's
  # any-group grant).
  statement {
    sid       = "WriteFunctionLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda.arn}:log-stream:*"]
  }
}

resource "aws_iam_policy" "lambda" {
  name        = "${var.name}-lambda"
  description = "What the container_manager function needs: Fargate jobs, their logs, the step queue."
  policy      = data.aws_iam_policy_document.lambda.json
}

resource "aws_iam_role_policy_attachment" "lambda" {
  role       = aws_iam_role.lambda.name
  policy_arn = aws_iam_policy.lambda.arn
}

# A function in a VPC creates and deletes its network interfaces (AWS managed policy: the EC2
# network-interface actions have no resource-level scoping).
resource "aws_iam_role_policy_attachment" "lambda_vpc" {
  count = var.lambda_in_vpc ? 1 : 0

  role       = aws_iam_role.lambda.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}
