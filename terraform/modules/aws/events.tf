# Platform events: ECS sends every task state change to EventBridge; this rule puts the
# cluster's stopped tasks of container_manager on the step queue, where sqs_batch harvests the
# job at once (container_manager.events.ecs). Checks and the sweep stay the safety net.

resource "aws_cloudwatch_event_rule" "task_stopped" {
  name        = "${var.name}-task-stopped"
  description = "container_manager: tasks of ${var.name} that stopped, to the step queue"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail = {
      clusterArn = [aws_ecs_cluster.this.arn]
      lastStatus = ["STOPPED"]
      # startedBy is cm-<launch key> for every task the fargate executor starts.
      startedBy = [{ prefix = "cm-" }]
    }
  })
}

resource "aws_cloudwatch_event_target" "task_stopped" {
  rule      = aws_cloudwatch_event_rule.task_stopped.name
  target_id = "step-queue"
  arn       = aws_sqs_queue.steps.arn

  # An event older than the check interval is worth nothing more than the check itself.
  retry_policy {
    maximum_event_age_in_seconds = var.task_event_max_age_seconds
    maximum_retry_attempts       = 10
  }
}

# EventBridge may send to the step queue, for this rule only.
data "aws_iam_policy_document" "steps_queue" {
  statement {
    sid       = "TaskEventsFromEventBridge"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.steps.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.task_stopped.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "steps" {
  queue_url = aws_sqs_queue.steps.id
  policy    = data.aws_iam_policy_document.steps_queue.json
}
