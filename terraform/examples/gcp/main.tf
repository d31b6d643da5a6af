# Example root for GCP: everything the app needs except the app service itself, which
# docs/deploy-gcp.md deploys with gcloud from infra/gcp/Dockerfile using these outputs.

module "container_manager" {
  source = "../../modules/gcp"

  project          = var.project
  region           = var.region
  name             = var.name
  app_service_name = var.app_service_name
  app_base_url     = var.app_base_url
  job_image        = var.job_image
  database_url     = var.database_url

  db_connection_budget = var.db_connection_budget
}
