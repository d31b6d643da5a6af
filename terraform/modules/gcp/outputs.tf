# Outputs of the GCP module: what the example root turns into the app's environment variables.

output "project" {
  description = "Project id (CM_CLOUDTASKS_PROJECT)."
  value       = var.project
}

output "region" {
  description = "Region of the queue, the scheduler job and the Cloud Run job."
  value       = var.region
}

output "queue_name" {
  description = "Cloud Tasks queue id (CM_CLOUDTASKS_QUEUE)."
  value       = google_cloud_tasks_queue.steps.name
}

output "queue_location" {
  description = "Cloud Tasks queue location (CM_CLOUDTASKS_LOCATION)."
  value       = google_cloud_tasks_queue.steps.location
}

output "app_base_url" {
  description = "Public URL of the app service, without a trailing slash."
  value       = local.app_base_url
}

output "app_host" {
  description = "Host name of the app (DJANGO_ALLOWED_HOSTS)."
  value       = split("/", trimprefix(trimprefix(local.app_base_url, "https://"), "http://"))[0]
}

output "step_base_url" {
  description = "Where container_manager.urls is mounted (CM_STEP_BASE_URL)."
  value       = local.step_base_url
}

output "oidc_audience" {
  description = "Audience of the push tokens (CM_OIDC_AUDIENCE)."
  value       = local.oidc_audience
}

output "invoker_service_account_email" {
  description = "Email in the push tokens (CM_OIDC_SERVICE_ACCOUNT)."
  value       = google_service_account.invoker.email
}

output "app_service_account_email" {
  description = "Runtime service account of the app service (gcloud run deploy --service-account)."
  value       = google_service_account.app.email
}

output "job_service_account_email" {
  description = "Service account the container jobs run as."
  value       = google_service_account.job.email
}

output "job_name" {
  description = "Cloud Run job that runs container jobs."
  value       = google_cloud_run_v2_job.jobs.name
}

output "scheduler_job_name" {
  description = "Cloud Scheduler job that posts to the sweep endpoint."
  value       = google_cloud_scheduler_job.sweep.name
}

output "database_url_secret_id" {
  description = "Secret Manager secret holding DATABASE_URL."
  value       = google_secret_manager_secret.database_url.secret_id
}

output "django_secret_key_secret_id" {
  description = "Secret Manager secret holding DJANGO_SECRET_KEY."
  value       = google_secret_manager_secret.django_secret_key.secret_id
}

output "cloudrun_events_subscription" {
  description = "Push subscription that posts Cloud Run completions to <base>events/cloudrun/ (CM_PLATFORM_EVENTS=cloudrun)."
  value       = google_pubsub_subscription.cloudrun_events.id
}

output "app_max_instance_count" {
  description = "Most instances of the app service (gcloud run deploy --max-instances): db_connection_budget / app_request_concurrency."
  value       = local.app_max_instance_count
}

output "app_max_instance_request_concurrency" {
  description = "Requests per instance of the app service (gcloud run deploy --concurrency)."
  value       = var.app_request_concurrency
}

output "queue_max_concurrent_dispatches" {
  description = "Pushes in flight at once on the step queue: the service's request slots less 2."
  value       = local.queue_max_concurrent_dispatches
}
