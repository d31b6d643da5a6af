# Outputs named after the environment variables functions/settings.py reads (upper case), plus
# the few values the deploy commands and the executor host need (lower case).
# Feed them to the service: docs/deploy-gcp.md. tests/test_terraform.py keeps both in step.

output "DJANGO_DEBUG" {
  description = "Debug off in a deployment."
  value       = "0"
}

output "DJANGO_ALLOWED_HOSTS" {
  description = "Host name of the app service."
  value       = module.container_manager.app_host
}

output "DATABASE_URL" {
  description = "Secret Manager secret holding DATABASE_URL (--set-secrets DATABASE_URL=<this>:latest)."
  value       = module.container_manager.database_url_secret_id
  sensitive   = true
}

output "DJANGO_SECRET_KEY" {
  description = "Secret Manager secret holding DJANGO_SECRET_KEY (--set-secrets DJANGO_SECRET_KEY=<this>:latest)."
  value       = module.container_manager.django_secret_key_secret_id
  sensitive   = true
}

output "CM_DISPATCH_BACKEND" {
  description = "Steps go through Cloud Tasks."
  value       = "cloudtasks"
}

output "CM_CLOUDTASKS_PROJECT" {
  description = "Project of the step queue."
  value       = module.container_manager.project
}

output "CM_CLOUDTASKS_LOCATION" {
  description = "Location of the step queue."
  value       = module.container_manager.queue_location
}

output "CM_CLOUDTASKS_QUEUE" {
  description = "Id of the step queue."
  value       = module.container_manager.queue_name
}

output "CM_STEP_BASE_URL" {
  description = "Where container_manager.urls is mounted; pushes go to <this>steps/<step>/."
  value       = module.container_manager.step_base_url
}

output "CM_OIDC_SERVICE_ACCOUNT" {
  description = "Service account in the push tokens of Cloud Tasks and Cloud Scheduler."
  value       = module.container_manager.invoker_service_account_email
}

output "CM_PLATFORM_EVENTS" {
  description = "Cloud Run completions are pushed to events/cloudrun/ (the module's log sink and subscription)."
  value       = "cloudrun"
}

output "CM_OIDC_AUDIENCE" {
  description = "Audience of the push tokens."
  value       = module.container_manager.oidc_audience
}

output "app_service_account" {
  description = "Runtime service account of the app service (gcloud run deploy --service-account)."
  value       = module.container_manager.app_service_account_email
}

output "cloudrun_executor_config" {
  description = "executor_config of an ExecutorHost with executor_type \"cloudrun\"."
  value = {
    project = module.container_manager.project
    region  = module.container_manager.region
    job     = module.container_manager.job_name
    image   = var.job_image
  }
}

output "app_service_name" {
  description = "Name to give the Cloud Run service (gcloud run deploy NAME): its URL is in CM_STEP_BASE_URL."
  value       = var.app_service_name
}

output "app_max_instances" {
  description = "gcloud run deploy --max-instances: db_connection_budget / app_concurrency."
  value       = module.container_manager.app_max_instance_count
}

output "app_concurrency" {
  description = "gcloud run deploy --concurrency: requests per instance (gunicorn --threads)."
  value       = module.container_manager.app_max_instance_request_concurrency
}
