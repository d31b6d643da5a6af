# Inputs of the AWS module. Names and defaults follow the app's settings and zappa_settings.json
# (docs/terraform.md).

variable "name" {
  description = "Prefix of every resource name (cluster, task family, queues, roles, log groups)."
  type        = string
  default     = "container-manager"
}

variable "lambda_function_name" {
  description = "Name of the function zappa deploys: <project_name>-<stage> of zappa_settings.json."
  type        = string
  default     = "container-manager-aws"
}

variable "lambda_in_vpc" {
  description = "The function runs in a VPC (zappa vpc_config), e.g. to reach a private RDS: grants the ENI permissions it needs."
  type        = bool
  default     = false
}

# -- Fargate -----------------------------------------------------------------------

variable "subnet_ids" {
  description = "Subnets the Fargate tasks run in (executor_config \"subnets\")."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the Fargate tasks (executor_config \"security_groups\")."
  type        = list(string)
  default     = []
}

variable "assign_public_ip" {
  description = "Give tasks a public IP (public subnets without NAT need it to pull images)."
  type        = bool
  default     = false
}

variable "task_image" {
  description = "Image of the task definition's container (executor_type \"fargate\": jobs naming another image are refused unless executor_config \"images\" maps it)."
  type        = string
}

variable "image_repository_arns" {
  description = "ECR repositories the task execution role may pull from (empty: images come from a public registry)."
  type        = list(string)
  default     = []
}

variable "job_secret_arns" {
  description = "Secrets Manager secret and SSM parameter ARNs that jobs may name as secret references (docs/secrets.md): the task execution role may read these only, and the function may register task definition revisions that declare them. A Secrets Manager ARN may end in -?????? or * to match its random suffix."
  type        = list(string)
  default     = []
}

variable "job_secret_kms_key_arns" {
  description = "Customer managed KMS keys that encrypt the job_secret_arns (empty: the AWS managed keys, which need no grant)."
  type        = list(string)
  default     = []
}

variable "container_name" {
  description = "Name of the container in the task definition (executor_config \"container_name\")."
  type        = string
  default     = "job"
}

variable "task_cpu" {
  description = "Default task CPU units; each run overrides it from the job's cpu_limit."
  type        = number
  default     = 256
}

variable "task_memory" {
  description = "Default task memory (MiB); each run overrides it from the job's memory_limit."
  type        = number
  default     = 512
}

variable "readonly_root_filesystem" {
  description = "Mount the container's root file system read-only (jobs that write files need a volume or false)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the job and function log groups (CloudWatch Logs accepted values)."
  type        = number
  default     = 365
}

# -- SQS -----------------------------------------------------------------------------

variable "queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the step queue: at least six times the function timeout (zappa timeout_seconds), as AWS advises for Lambda event sources."
  type        = number
  default     = 360
}

variable "queue_message_retention_seconds" {
  description = "How long a step message is kept (the sweep re-sends what is lost)."
  type        = number
  default     = 345600
}

variable "dlq_max_receive_count" {
  description = "Receives of a message before it moves to the dead-letter queue."
  type        = number
  default     = 5
}

variable "dlq_message_retention_seconds" {
  description = "How long dead letters are kept for inspection (SQS maximum: 14 days)."
  type        = number
  default     = 1209600
}

# -- Connections ---------------------------------------------------------------------

variable "db_connection_budget" {
  description = "Connections the app may hold on the database at once, one per concurrent function instance: the function's reserved concurrency (zappa lambda_concurrency) and, 2 fewer (at least 2), the SQS event source's maximum concurrency."
  type        = number
  default     = 40

  validation {
    condition     = var.db_connection_budget >= 4 && floor(var.db_connection_budget) == var.db_connection_budget
    error_message = "db_connection_budget: a whole number of at least 4 (2 for the SQS event source, 2 for the sweep and the admin)."
  }
}

variable "lambda_deployed" {
  description = "The function exists (zappa deploy ran once): make its SQS event source mapping, with the budget's maximum concurrency and partial batch responses (docs/deploy-aws.md imports zappa's)."
  type        = bool
  default     = false
}

variable "proxy_max_connections_percent" {
  description = "RDS Proxy (create_database): the share of the instance's max_connections the proxy may open; the rest stays for migrations and operators."
  type        = number
  default     = 80
}

# -- RDS (optional) ------------------------------------------------------------------

variable "create_database" {
  description = "Create an RDS PostgreSQL instance and build DATABASE_URL from it."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "VPC of the database security group (create_database only)."
  type        = string
  default     = null
}

variable "database_subnet_ids" {
  description = "Private subnets of the database (create_database only; two availability zones at least)."
  type        = list(string)
  default     = []
}

variable "database_client_security_group_ids" {
  description = "Security groups allowed to connect to PostgreSQL: the function's (zappa vpc_config)."
  type        = list(string)
  default     = []
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.micro"
}

variable "db_allocated_storage" {
  description = "Storage of the database, GiB."
  type        = number
  default     = 20
}

variable "db_engine_version" {
  description = "PostgreSQL major version."
  type        = string
  default     = "16"
}

variable "db_multi_az" {
  description = "Standby in a second availability zone."
  type        = bool
  default     = true
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups."
  type        = number
  default     = 7
}

variable "task_event_max_age_seconds" {
  description = "How long EventBridge keeps retrying to deliver a task event to the step queue (60-86400); the checks find a stopped task anyway (CHECK_DELAY_WITH_EVENTS)."
  type        = number
  default     = 3600
}
