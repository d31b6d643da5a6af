# The Cloud Run job that container jobs run as (executor_type "cloudrun"): the launch step calls
# run_job on it with per-run overrides (args, env, timeout), so it only holds image and sizes.

resource "google_cloud_run_v2_job" "jobs" {
  name                = "${var.name}-jobs"
  project             = var.project
  location            = var.region
  deletion_protection = var.job_deletion_protection

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.job.email
      timeout         = var.job_timeout
      # The app decides about retries (ContainerJob.max_attempts); Cloud Run must not rerun a task.
      max_retries = 0

      containers {
        name  = "job"
        image = var.job_image

        resources {
          limits = {
            cpu    = var.job_cpu
            memory = var.job_memory
          }
        }
      }
    }
  }

  lifecycle {
    # Deployments roll the image with gcloud; Terraform does not roll it back.
    ignore_changes = [client, client_version]
  }

  depends_on = [google_project_service.this]
}
