# Secret Manager entries read by the app service at start (gcloud run deploy --set-secrets):
# DATABASE_URL and DJANGO_SECRET_KEY never appear in the service's plain environment.

resource "random_password" "django_secret_key" {
  length  = 64
  special = true
}

resource "google_secret_manager_secret" "database_url" {
  secret_id = "${var.name}-database-url"
  project   = var.project

  replication {
    auto {}
  }

  depends_on = [google_project_service.this]
}

resource "google_secret_manager_secret_version" "database_url" {
  secret      = google_secret_manager_secret.database_url.id
  secret_data = var.database_url
}

resource "google_secret_manager_secret" "django_secret_key" {
  secret_id = "${var.name}-django-secret-key"
  project   = var.project

  replication {
    auto {}
  }

  depends_on = [google_project_service.this]
}

resource "google_secret_manager_secret_version" "django_secret_key" {
  secret      = google_secret_manager_secret.django_secret_key.id
  secret_data = random_password.django_secret_key.result
}
