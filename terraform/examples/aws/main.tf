# Example root for AWS: everything the app needs before `zappa deploy aws` (docs/deploy-aws.md),
# which creates the function, API Gateway, the sweep schedule and the SQS event source.

module "container_manager" {
  source = "../../modules/aws"

  name                 = var.name
  lambda_function_name = "${var.zappa_project_name}-${var.zappa_stage}"
  lambda_in_vpc        = var.create_database
  subnet_ids           = var.subnet_ids
  security_group_ids   = var.security_group_ids
  assign_public_ip     = var.assign_public_ip
  task_image           = var.task_image
  db_connection_budget = var.db_connection_budget
  lambda_deployed      = var.lambda_deployed

  create_database                    = var.create_database
  vpc_id                             = var.vpc_id
  database_subnet_ids                = var.database_subnet_ids
  database_client_security_group_ids = var.lambda_security_group_ids
}

locals {
  # Django matches a leading dot as "this domain and its subdomains": any API Gateway URL and
  # any function URL of the region.
  default_allowed_hosts = [
    ".execute-api.${var.region}.amazonaws.com",
    ".lambda-url.${var.region}.on.aws",
  ]
}
