# Service accounts and their grants. Every grant is on the narrowest resource the platform allows
# (the queue, the job, one service account, one secret); only log reading is project-wide.

# Runtime identity of the app service (Django, the step and sweep endpoints).
resource "google_service_account" "app" {
  project      = var.project
  account_id   = "${var.name}-app"
  display_name = "container_manager app (Cloud Run service)"
}

# Identity in the OIDC tokens Cloud Tasks and Cloud Scheduler attach to pushes; the app accepts
# only tokens for this email (CM_OIDC_SERVICE_ACCOUNT). It needs no role of its own.
resource "google_service_account" "invoker" {
  project      = var.project
  account_id   = "${var.name}-invoker"
  display_name = "container_manager push identity (Cloud Tasks, Cloud Scheduler)"
}

# Identity the container jobs run as. No role but reading job_secret_ids (below): grant it what
# your jobs need.
resource "google_service_account" "job" {
  project      = var.project
  account_id   = "${var.name}-job"
  display_name = "container_manager container jobs (Cloud Run job)"
}

# The app creates tasks on this queue only (cloudtasks.tasks.create), not on the project's others.
resource "google_cloud_tasks_queue_iam_member" "app_enqueuer" {
  project  = var.project
  location = google_cloud_tasks_queue.steps.location
  name     = google_cloud_tasks_queue.steps.name
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${google_service_account.app.email}"
}

# A task carrying an OIDC token for the invoker account may only be created by a caller that can
# act as it (iam.serviceAccounts.actAs): granted on that one account, not project-wide.
resource "google_service_account_iam_member" "app_acts_as_invoker" {
  service_account_id = google_service_account.invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.app.email}"
}

# What the cloudrun executor calls, and nothing else (roles/run.developer would add create,
# update and delete): run with overrides, read the job, read and cancel its executions.
resource "google_project_iam_custom_role" "job_runner" {
  project     = var.project
  role_id     = "${replace(var.name, "-", "_")}_job_runner"
  title       = "container_manager job runner"
  description = "Run one Cloud Run job with overrides, read and cancel its executions."
  permissions = [
    "run.jobs.get",
    "run.jobs.run",
    "run.jobs.runWithOverrides",
    "run.executions.get",
    "run.executions.list",
    "run.executions.cancel",
    "run.tasks.get",
    "run.tasks.list",
  ]
}

# Bound on the one job: executions and tasks are its children and inherit the job's policy.
resource "google_cloud_run_v2_job_iam_member" "app_runs_jobs" {
  project  = var.project
  location = google_cloud_run_v2_job.jobs.location
  name     = google_cloud_run_v2_job.jobs.name
  role     = google_project_iam_custom_role.job_runner.name
  member   = "serviceAccount:${google_service_account.app.email}"
}

# Running a job whose runtime identity is another account needs actAs on that account.
resource "google_service_account_iam_member" "app_acts_as_job" {
  service_account_id = google_service_account.job.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.app.email}"
}

# Job logs: Cloud Logging has no per-resource IAM for entries:list, so this is project-wide;
# a custom role keeps it to listing entries (roles/logging.viewer also reads sinks, metrics,
# buckets and views).
resource "google_project_iam_custom_role" "log_reader" {
  project     = var.project
  role_id     = "${replace(var.name, "-", "_")}_log_reader"
  title       = "container_manager log reader"
  description = "List log entries (Cloud Run job stdout and stderr)."
  permissions = ["logging.logEntries.list"]
}

resource "google_project_iam_member" "app_reads_logs" {
  project = var.project
  role    = google_project_iam_custom_role.log_reader.name
  member  = "serviceAccount:${google_service_account.app.email}"
}

# The service reads its two secrets, each granted on the secret itself.
resource "google_secret_manager_secret_iam_member" "app_reads_database_url" {
  project   = var.project
  secret_id = google_secret_manager_secret.database_url.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.app.email}"
}

resource "google_secret_manager_secret_iam_member" "app_reads_secret_key" {
  project   = var.project
  secret_id = google_secret_manager_secret.django_secret_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.app.email}"
}

# Secret references of jobs: Cloud Run reads them as the job's runtime identity when an
# execution starts, so the job account (not the app) may access these secrets, each on itself.
resource "google_secret_manager_secret_iam_member" "job_reads_job_secrets" {
  for_each = toset(var.job_secret_ids)

  project   = var.project
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.job.email}"
}

# Cloud SQL connections through the /cloudsql socket (gcloud run deploy --add-cloudsql-instances)
# need cloudsql.instances.connect, which Cloud SQL grants per project only.
resource "google_project_iam_member" "app_cloudsql_client" {
  count = var.grant_cloudsql_client ? 1 : 0

  project = var.project
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${google_service_account.app.email}"
}
