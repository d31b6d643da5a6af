# Platform events: Cloud Run writes a system log entry when an execution of the job finishes;
# a log sink sends those entries to a Pub/Sub topic whose push subscription posts them, with an
# OIDC token of the invoker account, to <base>events/cloudrun/ (container_manager.events.cloudrun).
# Checks and the sweep stay the safety net: a lost push only delays a job's end.

locals {
  # Completion entries of this job's executions. The text match keeps out the other system
  # entries of an execution (its tasks starting); it could not be checked against a real
  # project here (docs/terraform.md) and var.cloudrun_event_text_filter replaces it.
  cloudrun_event_filter = join(" AND ", compact([
    "resource.type=\"cloud_run_job\"",
    "resource.labels.job_name=\"${google_cloud_run_v2_job.jobs.name}\"",
    "logName=\"projects/${var.project}/logs/run.googleapis.com%2Fvarlog%2Fsystem\"",
    "labels.\"run.googleapis.com/execution_name\":*",
    var.cloudrun_event_text_filter,
  ]))
}

resource "google_pubsub_topic" "cloudrun_events" {
  #checkov:skip=CKV_GCP_83:entries name an execution only; Google-managed encryption is enough
  name    = "${var.name}-cloudrun-events"
  project = var.project
  # A completion older than this is found by the job's next check.
  message_retention_duration = var.cloudrun_event_retention

  depends_on = [google_project_service.this]
}

resource "google_logging_project_sink" "cloudrun_events" {
  name                   = "${var.name}-cloudrun-events"
  project                = var.project
  destination            = "pubsub.googleapis.com/${google_pubsub_topic.cloudrun_events.id}"
  filter                 = local.cloudrun_event_filter
  unique_writer_identity = true
}

# The sink's own writer identity publishes to this topic only.
resource "google_pubsub_topic_iam_member" "sink_publishes" {
  project = var.project
  topic   = google_pubsub_topic.cloudrun_events.name
  role    = "roles/pubsub.publisher"
  member  = google_logging_project_sink.cloudrun_events.writer_identity
}

resource "google_pubsub_subscription" "cloudrun_events" {
  name                       = "${var.name}-cloudrun-events"
  project                    = var.project
  topic                      = google_pubsub_topic.cloudrun_events.id
  ack_deadline_seconds       = 30
  message_retention_duration = var.cloudrun_event_retention

  expiration_policy {
    ttl = "" # never expires, however quiet the job is
  }

  retry_policy {
    minimum_backoff = "1s"
    maximum_backoff = "60s"
  }

  push_config {
    push_endpoint = "${local.step_base_url}events/cloudrun/"

    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = local.oidc_audience
    }
  }
}

# Pub/Sub's service agent mints the push tokens: token creator on the invoker account only.
resource "google_service_account_iam_member" "pubsub_signs_as_invoker" {
  service_account_id = google_service_account.invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
