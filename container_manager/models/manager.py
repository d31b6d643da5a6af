"""The job manager: the queries over jobs (which may launch, which are live) and ``create_job``.

``ContainerJob.objects`` is a ``JobManager``; its querysets are ``JobQuerySet``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q

from container_manager.models import idempotency, limits, workflows
from container_manager.models.environments import EnvironmentVariableTemplate
from container_manager.models.hosts import ExecutorHost
from container_manager.models.labels import save_labels
from container_manager.models.workflows import JobDependency
from container_manager.rules import array_limits, contract
from container_manager.rules import status as st
from container_manager.rules.envtext import format_env_text, parse_env_text
from container_manager.rules.idempotency import check_key

#: The order in which waiting jobs launch: best priority first, then the oldest.
LAUNCH_ORDER = ("-priority", "created_at")


def unfinished_dependencies() -> Any:
    """Edges of the outer job row (or of its array parent) that have not fired (``fired_edges``)."""
    return JobDependency.objects.filter(
        Q(job_id=OuterRef("pk")) | Q(job_id=OuterRef("array_parent_id"))
    ).exclude(workflows.fired_edges())


class JobQuerySet(models.QuerySet):
    """
    Queries over jobs by status; every method returns a QuerySet that can be chained.

    Available as ``ContainerJob.objects.pending()``, ``.active()``, ``.live()``
    and ``.terminal()``, and on any filtered queryset of jobs.
    """

    def pending(self) -> JobQuerySet:
        """
        Jobs waiting for execution (status ``pending``).

        >>> ContainerJob.objects.pending().filter(docker_image="nothing:here").count()
        0
        """
        return self.filter(status=st.PENDING)

    def active(self) -> JobQuerySet:
        """
        Jobs launching or running: they hold a slot on their host.

        >>> isinstance(ContainerJob.objects.active().count(), int)
        True
        """
        return self.filter(status__in=st.HOLDS_SLOT)

    def launchable(self, now: Any) -> JobQuerySet:
        """Pending jobs that may launch at ``now``, in ``LAUNCH_ORDER``.

        Due (``run_after`` passed or unset), no cancel request, not an array parent (it runs
        no container), no unfinished dependency, on an active host. Whether the host has a
        free slot is the caller's question: the sweep windows by free slots, the hand-over
        passes one.
        """
        return self.filter(
            Q(run_after__isnull=True) | Q(run_after__lte=now),
            Q(array_size__isnull=True) | Q(array_parent__isnull=False),
            ~Exists(unfinished_dependencies()),
            status=st.PENDING,
            cancel_requested_at__isnull=True,
            docker_host__is_active=True,
        ).order_by(*LAUNCH_ORDER)

    def live(self) -> JobQuerySet:
        """Jobs not yet terminal: pending, launching or running."""
        return self.filter(status__in=st.LIVE)

    def terminal(self) -> JobQuerySet:
        """Jobs that finished: completed, failed, timeout, cancelled or skipped."""
        return self.filter(status__in=st.TERMINAL)


class JobManager(models.Manager.from_queryset(JobQuerySet)):
    """
    Manager of ``ContainerJob``: the query shortcuts plus ``create_job``.

    ``pending()`` and ``active()`` return QuerySets; ``create_job()`` is the
    convenient, validated way to submit a job.
    """

    def create_job(
        self,
        image: str,
        command: str = "",
        name: str = "",
        environment_template: EnvironmentVariableTemplate | str | None = None,
        environment_vars: dict[str, str] | None = None,
        docker_host: ExecutorHost | None = None,
        idempotency_key: str | None = None,
        limited: bool = False,
        **kwargs: Any,
    ) -> models.Model:
        """
        Validate and submit a job; it is sent to launch when the transaction commits.

        Args:
            image: container image, e.g. ``"python:3.11-slim"``
            command: shell-form command (or a JSON array for exec form)
            name: human-readable name
            environment_template: a template instance or its name
            environment_vars: variables overlaid on the template (and on an
                ``override_environment`` text given in ``kwargs``)
            docker_host: where to run; when omitted an active host is chosen,
                weighted by ``weight``, preferring hosts with a free slot
            **kwargs: any other ``ContainerJob`` field (``memory_limit``,
                ``cpu_limit``, ``timeout_seconds``, ``working_directory``,
                ``network_configuration``, ``priority``, ``max_attempts``,
                ``run_after``, ``created_by`` …)
            labels: ``{key: value}`` as Kubernetes labels (``rules.labels``):
                shown by the API and the admin, filtered on by both, and given to
                Docker (container labels) and Fargate (task tags)
            depends_on: jobs (or ids) that must complete first, each one that
                ``created_by`` may view (``models.owners``; None sees every job); a pair
                ``(job or id, "failure" | "always" | "success")`` waits for that end
                instead; see ``container_manager.engine.workflows``. An object
                ``{"job": <array>, "on": <condition>, "type": "n_to_n"}`` makes each
                child ``i`` of this array wait for child ``i`` of that one (of the same size)
                instead of the whole array
            array_size: make an array job: the returned parent runs no
                container and has ``array_size`` children (``array_children``)
            returns_result: the last non-empty line of its stdout, JSON, is stored as
                its ``result`` and given to its dependents as ``CM_INPUT_<NODE>``; a run
                without one fails (``rules.results``); not with ``array_size``
            max_parallel: with ``array_size``, at most this many children launching or
                running at once (1 to ``array_size``); the others wait pending
            tolerated_failures: with ``array_size``, how many children may fail or time
                out (a count, or a percent such as ``"10%"``) before the array fails at
                once and the rest are cancelled; see ``rules.array_limits``
            array_order: ``"sequential"`` runs the children one after another, child
                ``i`` once child ``i - 1`` completed; ``"parallel"`` (the default) side by side
            idempotency_key: 1 to 255 printable ASCII characters; a call
                with the key ``created_by``'s scope already used within
                ``IDEMPOTENCY_WINDOW_SECONDS`` returns the job that call made
                (its ``replayed`` is True, False on a new job) instead of
                making another (``models.idempotency``)
            limited: apply the per-user quotas of ``models.limits`` (the JSON
                API does for users' tokens); trusted code is not limited

        Raises:
            ValidationError: naming the field at fault; nothing is stored. The
                types and bounds of the fields are ``container_manager.rules.contract``'s,
                the same the JSON API and its OpenAPI document use. An
                ``IdempotencyConflict`` (on ``idempotency_key``) when the key
                was used for different arguments.
            QuotaExceeded: with ``limited``, a quota the submission would exceed.

        >>> job = ContainerJob.objects.create_job(
        ...     image="python:3.11-slim",
        ...     command="python -c 'print(1)'",
        ...     name="Example Job",
        ...     memory_limit=256,
        ...     cpu_limit=1.0,
        ...     timeout_seconds=600,
        ...     environment_vars={"PYTHONPATH": "/app", "LOG_LEVEL": "INFO"},
        ... )
        >>> job.get_override_environment_variables_dict()
        {'PYTHONPATH': '/app', 'LOG_LEVEL': 'INFO'}
        >>> ContainerJob.objects.create_job(image="", docker_host=docker_host)
        Traceback (most recent call last):
        ...
        django.core.exceptions.ValidationError: {'docker_image': [...an image is required.']}
        """
        if idempotency_key is not None or limited:
            arguments = {
                "image": image, "command": command, "name": name,
                "environment_template": environment_template,
                "environment_vars": environment_vars, "docker_host": docker_host, **kwargs,
            }  # fmt: skip
            return self._create_guarded(arguments, idempotency_key, limited)
        plain, n_to_n = workflows.split_types(kwargs.pop("depends_on", None))
        depends_on = workflows.resolve_dependencies(plain, kwargs.get("created_by"))
        array_size = workflows.check_array_size(kwargs.pop("array_size", None))
        if array_size and kwargs.get("returns_result"):
            raise ValidationError(
                {"returns_result": "returns_result: an array has no result; submit it without."}
            )
        max_parallel, tolerated = array_limits.check(
            array_size, kwargs.pop("max_parallel", None), kwargs.pop("tolerated_failures", None)
        )
        per_child = workflows.resolve_n_to_n(n_to_n, kwargs.get("created_by"), array_size)
        order = workflows.check_array_order(kwargs.pop("array_order", None), array_size)
        if kwargs.get("labels") is None:
            kwargs.pop("labels", None)
        contract.check_arguments(
            {"docker_image": image, "command": command, "name": name}
            | {"environment_vars": environment_vars}
            | {key: kwargs[key] for key in kwargs.keys() & contract.BY_NAME.keys()}
        )
        template = _resolve_template(environment_template)
        override_text = kwargs.pop("override_environment", "") or ""
        if environment_vars:
            merged = _parse_field(override_text, "override_environment")
            merged.update(environment_vars)
            override_text = format_env_text(merged)
        if docker_host is None:
            docker_host = ExecutorHost.objects.choose()
            if docker_host is None:
                raise ValidationError(
                    {"docker_host": "docker_host: no active executor host exists."}
                )
        job = self.model(
            docker_image=image,
            command=command,
            name=name,
            environment_template=template,
            override_environment=override_text,
            docker_host=docker_host,
            array_size=array_size,
            max_parallel=max_parallel,
            tolerated_failures=tolerated,
            **kwargs,
        )
        # Skipped checks that would each cost a SELECT: the host and the template are saved
        # rows (read just now or given as instances), and a fresh UUID key is unique.
        job.full_clean(exclude=_saved_relations(job), validate_unique=False)
        if depends_on or array_size or job.labels:
            with transaction.atomic(using=self.db):
                job.save(using=self.db)
                workflows.submitted(job, depends_on, per_child, order)
                save_labels(job)
        else:
            job.save(using=self.db)  # one INSERT: no transaction of its own is needed
        return job

    def _create_guarded(
        self, arguments: dict[str, Any], key: str | None, limited: bool
    ) -> models.Model:
        """``create_job(**arguments)`` within the quotas if ``limited``, once per ``key``."""
        user = arguments.get("created_by")

        def make() -> models.Model:
            if limited:
                active = self.filter(created_by=user).live() if user is not None else None
                limits.check_submission(active, limits.rows_of(arguments.get("array_size")))
            return self.create_job(**arguments)

        if key is None:
            return make()
        request = {"kind": "job"} | {k: v for k, v in arguments.items() if k != "created_by"}
        job, created = idempotency.once(idempotency.scope_of(user), check_key(key), request, make)
        job.replayed = not created
        return job


def _saved_relations(job: models.Model) -> list[str]:
    """The foreign keys of ``job`` set to instances already saved: their rows exist."""
    return [
        name
        for name in ("docker_host", "environment_template", "workflow")
        if (related := getattr(job, name)) is not None and not related._state.adding
    ]


def _resolve_template(
    template: EnvironmentVariableTemplate | str | None,
) -> EnvironmentVariableTemplate | None:
    if template is None or isinstance(template, EnvironmentVariableTemplate):
        return template
    try:
        return EnvironmentVariableTemplate.objects.get(name=template)
    except EnvironmentVariableTemplate.DoesNotExist:
        raise ValidationError(
            {"environment_template": f"environment_template: no template named {template!r}."}
        ) from None


def _parse_field(text: str, field: str) -> dict[str, str]:
    try:
        return parse_env_text(text)
    except ValidationError as exc:
        raise ValidationError({field: [f"{field}: {m}" for m in exc.messages]}) from None
