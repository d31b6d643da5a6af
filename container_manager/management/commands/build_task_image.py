"""Build the image ``ContainerTaskBackend`` runs your tasks in: ``manage.py build_task_image TAG``.

No registry and no Dockerfile: this interpreter, the distributions the project needs from its
environment and the project's files, packed as a root filesystem and ``docker import``-ed.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_manager.management import rootfs

#: What the check run in the new image imports: Django, this app, and the project's settings.
CHECK = (
    "import importlib, os, django, container_manager; "
    "importlib.import_module(os.environ['DJANGO_SETTINGS_MODULE'])"
)


class Command(BaseCommand):
    """Pack this Python, the project's distributions and code into an image of the local engine."""

    help = (
        "Build an image that runs this project's Django tasks (ContainerTaskBackend's 'image'): "
        "this interpreter (Linux only), container_manager and the distributions it and --with "
        "need, installed in this environment, and the project directory under /app. "
        "It is imported into the Docker engine of DOCKER_HOST (or the local socket), or "
        "written as a tar with --output."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tag", help="The image's name, e.g. 'myproject-tasks:1'.")
        parser.add_argument(
            "--project-dir",
            help="The project's directory, its contents go to /app (default: BASE_DIR, "
            "else the current directory).",
        )
        parser.add_argument(
            "--with",
            dest="distributions",
            action="append",
            default=[],
            metavar="DIST",
            help="A distribution the tasks import (with its dependencies), e.g. 'requests'. "
            "Repeat it for each.",
        )
        parser.add_argument(
            "--exclude",
            action="append",
            default=[],
            metavar="PATTERN",
            help="Project files or directories to leave out (a name or a path pattern), on top "
            f"of {', '.join(rootfs.DEFAULT_EXCLUDES)} and virtualenvs.",
        )
        parser.add_argument(
            "--settings-module",
            help="DJANGO_SETTINGS_MODULE in the image (default: this command's).",
        )
        parser.add_argument(
            "--output", help="Write the root filesystem tar here (for 'docker import') instead."
        )
        parser.add_argument("--list", action="store_true", help="Print what would go in only.")

    def handle(self, *args: Any, **options: Any) -> None:
        project_dir = Path(
            options["project_dir"] or getattr(settings, "BASE_DIR", None) or os.getcwd()
        ).resolve()
        if not project_dir.is_dir():
            raise CommandError(f"--project-dir: {project_dir} is not a directory")
        settings_module = options["settings_module"] or os.environ.get("DJANGO_SETTINGS_MODULE", "")
        if not settings_module:
            raise CommandError("--settings-module: no DJANGO_SETTINGS_MODULE to put in the image")
        entries = self._entries(project_dir, options["distributions"], options["exclude"])
        if options["list"]:
            for line in rootfs.listing(entries):
                self.stdout.write(line, ending="")
            return
        changes = [*rootfs.IMAGE_CHANGES, f"ENV DJANGO_SETTINGS_MODULE={settings_module}"]
        if options["output"]:
            with open(options["output"], "wb") as stream:
                rootfs.write_tar(stream, entries)
            flags = " ".join(f"--change '{change}'" for change in changes)
            self.stdout.write(f"wrote {options['output']}; import it with:")
            self.stdout.write(f"docker import {flags} {options['output']} {options['tag']}")
            return
        self._import(entries, options["tag"], changes)

    def _entries(self, project_dir: Path, names: list[str], excludes: list[str]) -> rootfs.Entries:
        wanted = ["container_manager", *names]
        if django.VERSION < (6, 0) and importlib.util.find_spec("django_tasks"):
            wanted.append("django-tasks")  # the backport of django.tasks, on Django 5.2
        try:
            entries = rootfs.interpreter_entries()
            dists = rootfs.closure(wanted)
        except rootfs.RootfsError as exc:
            raise CommandError(str(exc)) from exc
        entries.update(rootfs.distribution_entries(dists))
        # The app this command runs, also when it is installed from a checkout (editable).
        entries.update(rootfs.package_entries(Path(rootfs.__file__).resolve().parent.parent))
        project = rootfs.project_entries(project_dir, (*rootfs.DEFAULT_EXCLUDES, *excludes))
        entries.update(project)
        return entries

    def _import(self, entries: rootfs.Entries, tag: str, changes: list[str]) -> None:
        try:
            import docker
            import docker.errors
            import docker.utils
        except ImportError as exc:
            raise CommandError(
                "the Docker SDK is missing: pip install 'container_manager[docker]', or use "
                "--output and 'docker import'"
            ) from exc
        repository, version = docker.utils.parse_repository_tag(tag)
        try:
            client = docker.from_env()
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / "rootfs.tar"
                with path.open("wb") as stream:
                    rootfs.write_tar(stream, entries)
                client.api.import_image_from_file(
                    str(path), repository=repository, tag=version or "latest", changes=changes
                )
            client.containers.run(tag, ["python", "-c", CHECK], remove=True, stderr=True)
        except docker.errors.ContainerError as exc:
            raise CommandError(
                f"{tag} was built but cannot import Django, container_manager or its settings: "
                f"{(exc.stderr or b'').decode(errors='replace')[-2000:]}"
            ) from exc
        except docker.errors.DockerException as exc:
            raise CommandError(f"the Docker engine refused: {exc}") from exc
        size = client.images.get(tag).attrs.get("Size", 0)
        self.stdout.write(
            f"built {tag} ({size / 1e6:.0f} MB): name it in TASKS[...]['OPTIONS']['image'] "
            "for a Docker host of this engine"
        )
