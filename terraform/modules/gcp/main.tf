# GCP resources of a container_manager deployment: the Cloud Tasks queue that carries steps,
# the Cloud Scheduler job that runs the sweep, and the APIs they need.

data "google_project" "this" {
  project_id = var.project
}

locals {
  # Cloud Run gives every service a deterministic URL: https://<service>-<project number>.<region>.run.app
  app_base_url = coalesce(
    var.app_base_url,
    "https://${var.app_service_name}-${data.google_project.this.number}.${var.region}.run.app",
  )
  # CM_STEP_BASE_URL: pushes go to <base>steps/<step>/, the sweep to <base>sweep/.
  step_base_url = "${trimsuffix(local.app_base_url, "/")}/${trimsuffix(trimprefix(var.mount_path, "/"), "/")}/"
  # One audience for Cloud Tasks and Cloud Scheduler tokens: the app accepts it (CM_OIDC_AUDIENCE).
  oidc_audience = local.step_base_url
  # The connection budget: instances x requests per instance connections at most; the queue
  # leaves 2 request slots to the sweep and the admin when a burst fills it.
  app_max_instance_count          = max(1, floor(var.db_connection_budget / var.app_request_concurrency))
  queue_max_concurrent_dispatches = max(1, local.app_max_instance_count * var.app_request_concurrency - 2)
  apis = [
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
  ]
}

resource "google_project_service" "this" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project = var.project
  service = each.value
  # Other workloads of the project may use the same APIs.
  disable_on_destroy = false
}

# Steps: one HTTP task per step, pushed to the app with an OIDC token of the invoker account.
resource "google_cloud_tasks_queue" "steps" {
  name     = "${var.name}-steps"
  project  = var.project
  location = var.region

  rate_limits {
    max_dispatches_per_second = var.queue_max_dispatches_per_second
    max_concurrent_dispatches = local.queue_max_concurrent_dispatches
  }

  retry_config {
    max_attempts       = var.queue_max_attempts
    max_retry_duration = var.queue_max_retry_duration
    min_backoff        = var.queue_min_backoff
    max_backoff        = var.queue_max_backoff
    max_doublings      = var.queue_max_doublings
  }

  stackdriver_logging_config {
    sampling_ratio = var.queue_log_sampling_ratio
  }

  depends_on = [google_project_service.this]
}

# The sweep: POST <base>sweep/ every minute with an OIDC token the app verifies.
resource "google_cloud_scheduler_job" "sweep" {
  name             = "${var.name}-sweep"
  project          = var.project
  region           = var.region
  description      = "container_manager sweep: re-sends every step that is due"
  schedule         = var.sweep_schedule
  time_zone        = var.sweep_time_zone
  attempt_deadline = var.sweep_attempt_deadline

  retry_config {
    # The next run is a minute away: a failed sweep is not retried.
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${local.step_base_url}sweep/"
    body        = base64encode("{}")
    headers = {
      "Content-Type" = "application/json"
    }

    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = local.oidc_audience
    }
  }

  depends_on = [google_project_service.this]
}
