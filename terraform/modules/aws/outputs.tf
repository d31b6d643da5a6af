# Outputs of the AWS module: what the example root turns into environment variables, zappa
# settings and the fargate executor_config.

output "region" {
  description = "Region of every resource."
  value       = local.region
}

output "cluster_name" {
  description = "ECS cluster (executor_config \"cluster\")."
  value       = aws_ecs_cluster.this.name
}

output "task_definition_family" {
  description = "Task definition family; runs use its latest ACTIVE revision (executor_config \"task_definition\")."
  value       = aws_ecs_task_definition.jobs.family
}

output "container_name" {
  description = "Container the run overrides go to (executor_config \"container_name\")."
  value       = var.container_name
}

output "subnet_ids" {
  description = "Subnets of the tasks (executor_config \"subnets\")."
  value       = var.subnet_ids
}

output "security_group_ids" {
  description = "Security groups of the tasks (executor_config \"security_groups\")."
  value       = var.security_group_ids
}

output "assign_public_ip" {
  description = "Whether tasks get a public IP (executor_config \"assign_public_ip\")."
  value       = var.assign_public_ip
}

output "job_log_group_name" {
  description = "Log group of the jobs' awslogs streams."
  value       = aws_cloudwatch_log_group.jobs.name
}

output "queue_url" {
  description = "Step queue URL (CM_SQS_QUEUE_URL)."
  value       = aws_sqs_queue.steps.url
}

output "queue_arn" {
  description = "Step queue ARN (the sqs_batch event source in zappa_settings.json)."
  value       = aws_sqs_queue.steps.arn
}

output "dead_letter_queue_url" {
  description = "Dead-letter queue URL (messages received dlq_max_receive_count times)."
  value       = aws_sqs_queue.steps_dlq.url
}

output "lambda_role_name" {
  description = "Role of the function (zappa role_name, with manage_roles false)."
  value       = aws_iam_role.lambda.name
}

output "lambda_role_arn" {
  description = "ARN of the function's role (zappa role_arn)."
  value       = aws_iam_role.lambda.arn
}

output "lambda_policy_arn" {
  description = "Policy with the app's permissions, attached to lambda_role_name; attach it to another role if zappa manages its own."
  value       = aws_iam_policy.lambda.arn
}

output "database_url" {
  description = "DATABASE_URL through RDS Proxy in front of the RDS instance (null without create_database)."
  sensitive   = true
  value = var.create_database ? format(
    "postgres://%s:%s@%s:5432/%s?sslmode=require",
    aws_db_instance.this[0].username,
    random_password.database[0].result,
    aws_db_proxy.this[0].endpoint,
    aws_db_instance.this[0].db_name,
  ) : null
}

output "db_pooler" {
  description = "CM_DB_POOLER of the app: transaction behind RDS Proxy (create_database), none otherwise."
  value       = var.create_database ? "transaction" : "none"
}

output "lambda_reserved_concurrency" {
  description = "Reserved concurrency of the function (zappa lambda_concurrency): db_connection_budget."
  value       = local.lambda_reserved_concurrency
}

output "sqs_maximum_concurrency" {
  description = "Maximum concurrency of the SQS event source: db_connection_budget - 2, at least 2."
  value       = local.sqs_maximum_concurrency
}

output "django_secret_key" {
  description = "Generated DJANGO_SECRET_KEY."
  sensitive   = true
  value       = random_password.django_secret_key.result
}

output "task_event_rule_arn" {
  description = "EventBridge rule that sends stopped tasks to the step queue (CM_PLATFORM_EVENTS=fargate)."
  value       = aws_cloudwatch_event_rule.task_stopped.arn
}
