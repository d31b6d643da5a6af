# Inputs of the GCP module. Names and defaults follow the app's settings (docs/terraform.md).

variable "project" {
  description = "Google Cloud project id that holds every resource."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Tasks queue, the Cloud Scheduler job, the Cloud Run job and the app service."
  type        = string
}

variable "name" {
  description = "Prefix of every resource name (queue, job, service accounts, secrets)."
  type        = string
  default     = "container-manager"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,20}$", var.name))
    error_message = "name must be 3-21 characters: lower-case letters, digits and dashes, starting with a letter (service account ids are at most 30)."
  }
}

variable "app_service_name" {
  description = "Name of the Cloud Run service that runs the functions project (deployed with gcloud, docs/deploy-gcp.md)."
  type        = string
  default     = "container-manager"
}

variable "app_base_url" {
  description = "Public https URL of the app without a trailing slash, e.g. a custom domain. Empty: the Cloud Run service's deterministic URL https://<service>-<project number>.<region>.run.app."
  type        = string
  default     = ""
}

variable "mount_path" {
  description = "Where functions/urls.py mounts container_manager.urls."
  type        = string
  default     = "cm/"
}

variable "enable_apis" {
  description = "Enable the Google APIs the deployment uses (needs serviceusage.services.enable)."
  type        = bool
  default     = true
}

# -- Cloud Tasks -------------------------------------------------------------------

variable "queue_max_dispatches_per_second" {
  description = "Cloud Tasks rate limit: pushes per second to the step endpoint."
  type        = number
  default     = 50
}

variable "db_connection_budget" {
  description = "Connections the app may hold on the database at once: each Cloud Run request slot keeps one (DATABASE_CONN_MAX_AGE). Sets the service's max instances (budget / app_request_concurrency) and the queue's concurrent dispatches (those slots less 2 for the sweep and the admin)."
  type        = number
  default     = 40

  validation {
    condition     = var.db_connection_budget >= 3 && floor(var.db_connection_budget) == var.db_connection_budget
    error_message = "db_connection_budget: a whole number of at least 3 (1 for the queue, 2 for the sweep and the admin)."
  }
}

variable "app_request_concurrency" {
  description = "Requests one app instance serves at once (gcloud run deploy --concurrency): gunicorn's --threads in infra/gcp/Dockerfile, 8."
  type        = number
  default     = 8
}

variable "queue_max_attempts" {
  description = "Attempts per task, the first included (-1: unlimited). The sweep re-sends whatever a dropped task leaves due."
  type        = number
  default     = 10
}

variable "queue_max_retry_duration" {
  description = "Time limit for retrying a task, e.g. \"3600s\" (\"0s\": no limit)."
  type        = string
  default     = "3600s"
}

variable "queue_min_backoff" {
  description = "Shortest wait before a task is retried."
  type        = string
  default     = "1s"
}

variable "queue_max_backoff" {
  description = "Longest wait before a task is retried."
  type        = string
  default     = "300s"
}

variable "queue_max_doublings" {
  description = "Times the retry interval doubles before growing linearly."
  type        = number
  default     = 5
}

variable "queue_log_sampling_ratio" {
  description = "Fraction of task operations written to Cloud Logging (0 to 1)."
  type        = number
  default     = 0.1
}

# -- Cloud Scheduler ---------------------------------------------------------------

variable "sweep_schedule" {
  description = "Cron schedule of the sweep (every minute, like zappa's rate(1 minute) on AWS)."
  type        = string
  default     = "* * * * *"
}

variable "sweep_time_zone" {
  description = "Time zone of sweep_schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "sweep_attempt_deadline" {
  description = "How long Cloud Scheduler waits for the sweep endpoint to answer."
  type        = string
  default     = "60s"
}

# -- Cloud Run job (container jobs) ------------------------------------------------

variable "job_image" {
  description = "Image of the Cloud Run job that runs container jobs (executor_type \"cloudrun\": jobs naming another image are refused unless executor_config \"images\" maps it)."
  type        = string
}

variable "job_cpu" {
  description = "CPU limit of a job's container."
  type        = string
  default     = "1"
}

variable "job_memory" {
  description = "Memory limit of a job's container."
  type        = string
  default     = "512Mi"
}

variable "job_timeout" {
  description = "Default task timeout of the Cloud Run job; each run overrides it with the ContainerJob's timeout plus a margin."
  type        = string
  default     = "3600s"
}

variable "job_deletion_protection" {
  description = "Refuse to destroy the Cloud Run job (google provider 6.x default)."
  type        = bool
  default     = true
}

variable "job_secret_ids" {
  description = "Secret Manager secrets that jobs may name as secret references (docs/secrets.md), as projects/<project>/secrets/<name> or <name> in this project: the job service account gets roles/secretmanager.secretAccessor on each."
  type        = list(string)
  default     = []
}

# -- Secrets -----------------------------------------------------------------------

variable "database_url" {
  description = "DATABASE_URL stored in Secret Manager, e.g. postgres://user:pass@/db?host=/cloudsql/<project>:<region>:<instance>."
  type        = string
  sensitive   = true
}

variable "grant_cloudsql_client" {
  description = "Grant the app's service account roles/cloudsql.client (the database is a Cloud SQL instance of this project)."
  type        = bool
  default     = true
}

# -- Cloud Run completion events -----------------------------------------------------

variable "cloudrun_event_text_filter" {
  description = "Logging filter clause that picks the execution-finished entries among Cloud Run's system log entries (empty: every system entry of the job's executions, each then costing one harvest)."
  type        = string
  default     = "(textPayload:\"completed\" OR textPayload:\"failed\")"
}

variable "cloudrun_event_retention" {
  description = "How long the topic and subscription keep an undelivered completion entry; later, the job's checks find the end anyway."
  type        = string
  default     = "3600s"
}
