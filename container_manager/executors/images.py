"""Which platform job runs a job's image, on platforms whose runs cannot change the image.

Cloud Run, Fargate and Scaleway start a job, task definition or job definition that holds
its image; the host's ``executor_config`` says which image that is and maps other images.
"""

from __future__ import annotations

from typing import Any

from container_manager.executors.exceptions import ExecutorConfigurationError
from container_manager.executors.types import ConfigKey

#: The ``executor_config`` keys such a platform reads: its platform job's image and the map.
IMAGE_KEYS = (
    ConfigKey("image", (str,), "Image the platform job runs; jobs naming another are refused."),
    ConfigKey("images", (dict,), "Other images, each mapped to the platform job that runs it."),
)


def check_map(config: dict[str, Any]) -> None:
    """Raise ``ExecutorConfigurationError`` naming ``images`` unless it maps names to names.

    >>> check_map({"images": {"repo/app:2": "job-b"}})
    >>> check_map({"images": {"repo/app:2": ""}})
    Traceback (most recent call last):
    ...
    container_manager.executors.exceptions.ExecutorConfigurationError: \
executor_config['images']['repo/app:2']: must name a platform job (a non-empty string)
    """
    for image, target in (config.get("images") or {}).items():
        if not image.strip():
            raise ExecutorConfigurationError(
                "executor_config['images']: an image name must not be empty", key="images"
            )
        if not isinstance(target, str) or not target.strip():
            raise ExecutorConfigurationError(
                f"executor_config['images'][{image!r}]: must name a platform job "
                "(a non-empty string)",
                key="images",
            )


def platform_job(config: dict[str, Any], key: str, image: str) -> str | None:
    """The platform job that runs ``image``: ``config[key]`` for its own image (or none named),
    the ``images`` entry for another; None when no job of the host runs it.

    >>> config = {"job": "job-a", "image": "repo/app:1", "images": {"repo/app:2": "job-b"}}
    >>> [platform_job(config, "job", i) for i in ("", "repo/app:1", "repo/app:2", "other")]
    ['job-a', 'job-a', 'job-b', None]
    """
    image = (image or "").strip()
    if not image or image == config.get("image"):
        return str(config.get(key) or "")  # a missing key is the config's error, named at launch
    return (config.get("images") or {}).get(image)


def refusal(config: dict[str, Any], key: str, kind: str, image: str) -> str:
    """Why no platform job of this host runs ``image`` ("" when one does), for the submit error.

    >>> refusal({"job": "j", "image": "a:1"}, "job", "Cloud Run job", "b:2")
    "cannot run 'b:2': its Cloud Run job 'j' runs 'a:1' (executor_config['image']); \
leave docker_image empty for it, or map 'b:2' to a Cloud Run job in executor_config['images']"
    """
    if platform_job(config, key, image) is not None:
        return ""
    runs = (
        f"runs {config['image']!r} (executor_config['image'])"
        if config.get("image")
        else "runs the image it was created with, which executor_config['image'] does not name"
    )
    return (
        f"cannot run {image.strip()!r}: its {kind} {config.get(key)!r} {runs}; leave "
        f"docker_image empty for it, or map {image.strip()!r} to a {kind} in "
        "executor_config['images']"
    )


def launch_target(config: dict[str, Any], key: str, kind: str, image: str) -> str:
    """The platform job a launch of ``image`` starts; a configuration error naming ``images``
    when the host's map changed since the job was accepted."""
    target = platform_job(config, key, image)
    if target is None:
        raise ExecutorConfigurationError(
            f"executor_config['images']: no {kind} runs {image!r} any more", key="images"
        )
    return target


class PlatformImages:
    """Mixin (before ``ContainerExecutor``) of the executors whose runs take their image from a
    platform job: set ``platform_job_key`` (the ``executor_config`` key of the default
    platform job) and ``platform_job_kind`` (its name in messages), and add ``IMAGE_KEYS`` to
    ``config_schema``."""

    platform_job_key: str
    platform_job_kind: str = "platform job"
    config: dict[str, Any]

    def __init__(self, host: Any):
        super().__init__(host)
        check_map(self.config)

    @classmethod
    def image_refusal(cls, config: dict[str, Any], image: str) -> str:
        """Why a job naming ``image`` is refused on a host with ``config``; "" when it is not."""
        return refusal(config, cls.platform_job_key, cls.platform_job_kind, image)

    def platform_job_for(self, image: str) -> str:
        """The platform job a launch of ``image`` starts (``launch_target``)."""
        return launch_target(self.config, self.platform_job_key, self.platform_job_kind, image)
