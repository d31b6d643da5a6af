"""The deployable Django project around container_manager: settings from the environment."""
