# Outputs named after the environment variables functions/settings.py reads (upper case), plus
# the values zappa_settings.json and the fargate ExecutorHost need (lower case).
# DJANGO_DEBUG and CM_DISPATCH_BACKEND are fixed in zappa_settings.json; AWS_REGION is set by
# Lambda itself. tests/test_terraform.py keeps the three in step.

output "DATABASE_URL" {
  description = "PostgreSQL URL: RDS Proxy's in front of the RDS instance, or var.database_url."
  value       = var.create_database ? module.container_manager.database_url : var.database_url
  sensitive   = true
}

output "CM_DB_POOLER" {
  description = "transaction behind RDS Proxy (create_database): no session state on the connection."
  value       = module.container_manager.db_pooler
}

output "DJANGO_SECRET_KEY" {
  description = "Generated Django secret key."
  value       = module.container_manager.django_secret_key
  sensitive   = true
}

output "DJANGO_ALLOWED_HOSTS" {
  description = "Host names the function answers to."
  value       = join(",", length(var.allowed_hosts) > 0 ? var.allowed_hosts : local.default_allowed_hosts)
}

output "CM_SQS_QUEUE_URL" {
  description = "Step queue the SQS backend sends to."
  value       = module.container_manager.queue_url
}

output "CM_PLATFORM_EVENTS" {
  description = "ECS task state changes reach the step queue (the module's EventBridge rule)."
  value       = "fargate"
}

output "zappa_sqs_event_source_arn" {
  description = "events[].event_source.arn of functions.handlers.sqs_batch in zappa_settings.json."
  value       = module.container_manager.queue_arn
}

output "zappa_role_name" {
  description = "role_name in zappa_settings.json (with manage_roles false)."
  value       = module.container_manager.lambda_role_name
}

output "dead_letter_queue_url" {
  description = "Where step messages go after 5 failed receives."
  value       = module.container_manager.dead_letter_queue_url
}

output "fargate_executor_config" {
  description = "executor_config of an ExecutorHost with executor_type \"fargate\"."
  value = {
    cluster          = module.container_manager.cluster_name
    task_definition  = module.container_manager.task_definition_family
    container_name   = module.container_manager.container_name
    subnets          = module.container_manager.subnet_ids
    security_groups  = module.container_manager.security_group_ids
    assign_public_ip = module.container_manager.assign_public_ip
    region           = module.container_manager.region
    image            = var.task_image
  }
}

output "zappa_lambda_concurrency" {
  description = "lambda_concurrency (reserved concurrency) of the stage in zappa_settings.json: db_connection_budget."
  value       = module.container_manager.lambda_reserved_concurrency
}

output "sqs_maximum_concurrency" {
  description = "Maximum concurrency of the SQS event source (with lambda_deployed): the budget less 2."
  value       = module.container_manager.sqs_maximum_concurrency
}
