# Inputs of the AWS example (terraform.tfvars or TF_VAR_*).

variable "region" {
  description = "AWS region; zappa_settings.json aws_region must be the same."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Prefix of every resource name; the step queue is <name>-steps."
  type        = string
  default     = "container-manager"
}

variable "zappa_project_name" {
  description = "project_name in zappa_settings.json."
  type        = string
  default     = "container-manager"
}

variable "zappa_stage" {
  description = "The zappa stage deployed with this infrastructure."
  type        = string
  default     = "aws"
}

variable "subnet_ids" {
  description = "Subnets of the Fargate tasks."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the Fargate tasks."
  type        = list(string)
  default     = []
}

variable "assign_public_ip" {
  description = "Give tasks a public IP (public subnets without NAT)."
  type        = bool
  default     = false
}

variable "task_image" {
  description = "Image of the Fargate task definition."
  type        = string
}

variable "allowed_hosts" {
  description = "DJANGO_ALLOWED_HOSTS; empty: any API Gateway or function URL host of the region."
  type        = list(string)
  default     = []
}

variable "database_url" {
  description = "DATABASE_URL of an existing PostgreSQL (when create_database is false)."
  type        = string
  default     = null
  sensitive   = true
}

variable "create_database" {
  description = "Create an RDS PostgreSQL; the function then runs in the VPC (zappa vpc_config)."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "VPC of the database (create_database only)."
  type        = string
  default     = null
}

variable "database_subnet_ids" {
  description = "Private subnets of the database (create_database only)."
  type        = list(string)
  default     = []
}

variable "lambda_security_group_ids" {
  description = "Security groups of the function (zappa vpc_config SecurityGroupIds), allowed to reach the database."
  type        = list(string)
  default     = []
}

variable "db_connection_budget" {
  description = "Connections the app may hold on the database at once: the function's reserved concurrency, and 2 fewer for the SQS event source (docs/terraform.md)."
  type        = number
  default     = 40
}

variable "lambda_deployed" {
  description = "Set to true once zappa deploy created the function: the SQS event source mapping is then managed here (docs/deploy-aws.md)."
  type        = bool
  default     = false
}
