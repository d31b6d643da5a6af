"""Cold start and bundle size of the JSON API as written today against django-ninja and DRF.

Each round starts a fresh process per option (alternated), which sets Django up, imports the
API and serves its first ``GET api/jobs/`` (20 jobs, a service token); the bundle size is what
each framework adds to a zappa zip: its distributions, deflated, minus what the app already has.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
#: Distributions the app's runtime already ships (not counted as a framework's addition).
RUNTIME = {"django", "asgiref", "sqlparse", "tzdata"}

# One endpoint of each framework: the jobs list with the API's bearer token check, and the
# framework's OpenAPI view mounted beside it, as a port would have them.
NINJA_URLS = """
from django.urls import include, path
from ninja import NinjaAPI, Schema
from ninja.security import HttpBearer
from functions.urls import urlpatterns as base
from container_manager.models import ContainerJob
from container_manager.web.auth import AuthError, authenticate_api

class Bearer(HttpBearer):
    def authenticate(self, request, token):
        try:
            return authenticate_api(request)
        except AuthError:
            return None

class Job(Schema):
    id: str
    name: str
    status: str
    docker_image: str
    command: str

class Page(Schema):
    jobs: list[Job]
    next_cursor: str | None = None

api = NinjaAPI(auth=Bearer(), urls_namespace="bench")

@api.get("/jobs/", response=Page, operation_id="listJobs")
def list_jobs(request, limit: int = 50):
    rows = request.auth.visible(ContainerJob.objects.order_by("-created_at", "-id"))[:limit]
    return {"jobs": [Job(id=str(j.pk), name=j.name, status=j.status,
            docker_image=j.docker_image, command=j.command) for j in rows]}

urlpatterns = [path("cmx/api/", api.urls), *base]
"""

DRF_URLS = """
from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework import authentication, exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView
from functions.urls import urlpatterns as base
from container_manager.models import ContainerJob
from container_manager.web.auth import AuthError, authenticate_api

class Bearer(authentication.BaseAuthentication):
    def authenticate(self, request):
        try:
            return (None, authenticate_api(request))
        except AuthError as exc:
            raise exceptions.AuthenticationFailed(exc.reason)

class Job(serializers.ModelSerializer):
    class Meta:
        model = ContainerJob
        fields = ["id", "name", "status", "docker_image", "command"]

class Jobs(APIView):
    authentication_classes = [Bearer]
    permission_classes = []

    def get(self, request):
        limit = int(request.query_params.get("limit", 50))
        rows = request.auth.visible(ContainerJob.objects.order_by("-created_at", "-id"))[:limit]
        return Response({"jobs": Job(rows, many=True).data, "next_cursor": None})

urlpatterns = [
    path("cmx/api/jobs/", Jobs.as_view()),
    path("cmx/api/schema/", SpectacularAPIView.as_view()),
    *base,
]
"""

# The child: the extra distributions go after the venv's (the venv's Django wins), then the
# deployed WSGI app serves one request.
CHILD = """
import json, sys
from wsgiref.util import setup_testing_defaults
extra, urls, apps, path = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
if extra:
    sys.path.append(extra)
from django.conf import settings
settings.ROOT_URLCONF = urls
settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, *apps]
settings.REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
                           "UNAUTHENTICATED_USER": None}
from django.core.wsgi import get_wsgi_application
app = get_wsgi_application()
environ = {"PATH_INFO": path, "HTTP_HOST": "localhost", "HTTP_X_FORWARDED_PROTO": "https",
           "HTTP_AUTHORIZATION": "Bearer %s"}
setup_testing_defaults(environ)
status = []
body = b"".join(app(environ, lambda s, h, exc_info=None: status.append(s)))
assert status[0].startswith("200"), (status, body[:500])
assert len(json.loads(body)["jobs"]) == 20, body[:500]
""".replace("%s", TOKEN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per option")
    parser.add_argument(
        "--ninja", type=Path, required=True, help="pip --target dir of django-ninja"
    )
    parser.add_argument(
        "--drf", type=Path, required=True, help="pip --target dir of djangorestframework + "
        "drf-spectacular",
    )  # fmt: skip
    parser.add_argument(
        "--output", type=Path, default=REPO / "benchmarks" / "results" / "api_frameworks.json"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cm-api-frameworks-") as tmp:
        targets = _targets(Path(tmp), args.ninja, args.drf)
        samples = _measure(targets, _environment(Path(tmp)), args.runs)
    result = {
        "python": sys.version.split()[0],
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "cold_start": _summarise(samples),
        "bundle": {
            "handwritten": {"zipped_bytes": 0, "unzipped_bytes": 0, "distributions": []},
            "django-ninja": added_size(args.ninja),
            "drf+drf-spectacular": added_size(args.drf),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for name, figures in result["cold_start"].items():
        size = result["bundle"][name]
        print(f"{name:>20}: cold start median {figures['median_ms']:7.1f} ms "
              f"({figures['ratio']:.2f}x today's, per round {figures['paired_ratio']:.2f}x), "
              f"load {figures['load_1min']}; "
              f"adds {size['zipped_bytes'] / 1024:7.0f} KiB zipped, "
              f"{size['unzipped_bytes'] / 1024:7.0f} KiB unzipped")  # fmt: skip
    print(f"written to {args.output}")


def added_size(target: Path) -> dict:
    """Bytes of the distributions under ``target`` that the app's runtime lacks, as zappa zips.

    Files are those each distribution's RECORD lists (bytecode caches left out, as zappa
    leaves them out), deflated one by one as ``zipfile`` does for zappa.
    """
    names, unzipped = [], 0
    archive_path = target.parent / f"{target.name}.zip"
    with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for record in sorted(target.glob("*.dist-info/RECORD")):
            name = record.parent.name.split("-")[0].lower().replace("_", "-")
            if name in RUNTIME:
                continue
            names.append(name)
            for line in record.read_text().splitlines():
                relative = line.rsplit(",", 2)[0]
                path = (target / relative).resolve()
                if "__pycache__" in relative or not path.is_file():
                    continue
                unzipped += path.stat().st_size
                archive.write(path, relative)
    zipped = archive_path.stat().st_size
    archive_path.unlink()
    return {"zipped_bytes": zipped, "unzipped_bytes": unzipped, "distributions": names}


def _targets(tmp: Path, ninja: Path, drf: Path) -> dict[str, list[str]]:
    """name -> command of each option; the database and URLconfs are made here, not timed."""
    (tmp / "bench_ninja_urls.py").write_text(NINJA_URLS)
    (tmp / "bench_drf_urls.py").write_text(DRF_URLS)
    env = _environment(tmp)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
    seed = (
        "import django; django.setup()\n"
        "from container_manager.models import ContainerJob, ExecutorHost\n"
        "host = ExecutorHost.objects.create(name='bench', executor_type='mock')\n"
        "for i in range(20):\n"
        "    ContainerJob.objects.create_job(image='busybox', name=f'j{i}', docker_host=host)\n"
    )
    subprocess.run([sys.executable, "-c", seed], cwd=REPO, env=env, check=True)
    # Deployed code is bytecode: compile the project's modules and the frameworks' first.
    for folder in (REPO / "container_manager", REPO / "functions", ninja, drf, tmp):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder)], check=True)
    child = [sys.executable, "-c", CHILD]
    return {
        "handwritten": [*child, "", "functions.urls", "[]", "/cm/api/jobs/"],
        "django-ninja": [*child, str(ninja), "bench_ninja_urls", "[]", "/cmx/api/jobs/"],
        "drf+drf-spectacular": [
            *child, str(drf), "bench_drf_urls", '["rest_framework", "drf_spectacular"]',
            "/cmx/api/jobs/",
        ],
    }  # fmt: skip


def _environment(tmp: Path) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("CM_", "DJANGO_", "DATABASE"))
    }
    return {
        **clean,
        "PYTHONPATH": str(tmp),
        "DJANGO_SETTINGS_MODULE": "functions.settings",
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "CM_API_TOKENS": TOKEN,
        "CM_DISPATCH_BACKEND": "immediate",
    }


def _measure(
    targets: dict[str, list[str]], env: dict[str, str], runs: int
) -> dict[str, list[tuple[float, float]]]:
    """(wall seconds, 1-minute load) of each fresh process, options alternated in each round."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    for round_ in range(runs + 1):  # the first round warms the OS file cache and is dropped
        order = list(targets) if round_ % 2 else list(reversed(targets))
        for name in order:
            load = os.getloadavg()[0]
            start = time.perf_counter()
            done = subprocess.run(targets[name], cwd=REPO, env=env, capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            if done.returncode:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            if round_:
                samples[name].append((elapsed, load))
    return samples


def _summarise(samples: dict[str, list[tuple[float, float]]]) -> dict[str, dict]:
    """Each option's times, and its ratio to today's: of the medians, and the median of the
    rounds' own ratios (a round's options ran back to back: less moved by the load)."""
    today = [t for t, _ in samples["handwritten"]]
    out = {}
    for name, runs in samples.items():
        times = [t for t, _ in runs]
        median = statistics.median(times)
        paired = [t / h for t, h in zip(times, today, strict=True)]
        out[name] = {
            "median_ms": round(median * 1000, 1),
            "min_ms": round(min(times) * 1000, 1),
            "max_ms": round(max(times) * 1000, 1),
            "ratio": round(median / statistics.median(today), 3),
            "paired_ratio": round(statistics.median(paired), 3),
            "load_1min": round(statistics.median(load for _, load in runs), 2),
        }
    return out


if __name__ == "__main__":
    main()
