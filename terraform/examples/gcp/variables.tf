# Inputs of the GCP example (terraform.tfvars or TF_VAR_*).

variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of every resource."
  type        = string
  default     = "europe-west1"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "container-manager"
}

variable "app_service_name" {
  description = "Cloud Run service name used by gcloud run deploy."
  type        = string
  default     = "container-manager"
}

variable "app_base_url" {
  description = "Public URL of the app (custom domain); empty: the service's run.app URL."
  type        = string
  default     = ""
}

variable "job_image" {
  description = "Image of the Cloud Run job that runs container jobs."
  type        = string
}

variable "database_url" {
  description = "DATABASE_URL of the PostgreSQL database (stored in Secret Manager)."
  type        = string
  sensitive   = true
}

variable "db_connection_budget" {
  description = "Connections the app may hold on the database at once: max instances x concurrency of the service, the queue's concurrent dispatches (docs/terraform.md)."
  type        = number
  default     = 40
}
