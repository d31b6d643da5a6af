"""Cold start of the functions project against a bare Django project of the same version.

Each run is a fresh process: interpreter start, imports, Django setup and one GET /admin/login/.
Both projects are timed as deployed: static files collected, their own modules compiled.
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

import django

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.3

# The child: set up the project's WSGI app, send it one request, report status and SDKs loaded.
CHILD = """
import sys
from wsgiref.util import setup_testing_defaults
from django.core.wsgi import get_wsgi_application
app = get_wsgi_application()
environ = {"PATH_INFO": "/admin/login/", "HTTP_HOST": "localhost",
           "HTTP_X_FORWARDED_PROTO": "https"}  # behind the platforms' TLS front
setup_testing_defaults(environ)
status = []
body = b"".join(app(environ, lambda s, h, exc_info=None: status.append(s)))
assert status[0].startswith("200") and b"login-form" in body, status
sdks = [m for m in ("boto3", "botocore", "google.cloud", "docker") if m in sys.modules]
print(",".join(sdks))
"""

# The same through zappa's packaged handler, loaded from the unzipped bundle only.
BUNDLE_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import handler
event = {"path": "/admin/login/", "httpMethod": "GET", "headers": {"Host": "localhost"},
         "queryStringParameters": None, "body": None, "requestContext": {}}
response = handler.lambda_handler(event, None)
assert response["statusCode"] == 200 and "login-form" in response["body"], response
print(",".join(m for m in ("boto3", "google.cloud") if m in sys.modules))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per target")
    parser.add_argument("--bundle", type=Path, help="also time zappa's handler from this zip")
    parser.add_argument(
        "--output", type=Path, default=REPO / "benchmarks" / "results" / "cold_start.json"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cm-cold-start-") as tmp:
        targets = _targets(Path(tmp), args.bundle)
        samples = _measure(targets, args.runs)
    result = _summarise(samples, args.runs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for name, figures in result["targets"].items():
        ratio = figures["ratio_to_bare"]
        print(f"{name:>12}: median {figures['median_ms']:7.1f} ms  ({ratio:.2f}x bare)"
              f"  SDKs loaded: {figures['sdks_loaded'] or 'none'}")  # fmt: skip
    print(f"target: functions <= {TARGET_RATIO}x bare -> {'met' if result['met'] else 'NOT met'}")
    print(f"written to {args.output}")


def _targets(tmp: Path, bundle: Path | None) -> dict[str, tuple[list[str], Path, dict[str, str]]]:
    """name -> (command, cwd, environment) of each thing timed."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("CM_", "DJANGO_", "DATABASE"))
    }
    bare_dir = tmp / "bare"
    bare_dir.mkdir()
    admin = Path(sys.executable).with_name("django-admin")
    subprocess.run([str(admin), "startproject", "bare", str(bare_dir)], check=True)
    targets = {
        "bare": (
            [sys.executable, "-c", CHILD],
            bare_dir,
            {**clean, "DJANGO_SETTINGS_MODULE": "bare.settings"},
        ),
        "functions": (
            [sys.executable, "-c", CHILD],
            REPO,
            {
                **clean,
                "DJANGO_SETTINGS_MODULE": "functions.settings",
                "DATABASE_URL": f"sqlite:///{tmp / 'functions.sqlite3'}",
                # Configured for SQS, as deployed: the SDK must still not load for a web request.
                "CM_DISPATCH_BACKEND": "sqs",
                "CM_SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/steps",
                "DJANGO_SECRET_KEY": "cold-start",
            },
        ),
    }
    if bundle:
        unzipped = tmp / "bundle"
        with zipfile.ZipFile(bundle) as archive:
            archive.extractall(unzipped)
        # The Lambda runtime's interpreter: the one infra/lambda-bundle.sh built the bundle with.
        base_python = REPO / "build" / "lambda-venv-aws" / "bin" / "python"
        targets["zappa_bundle"] = (
            [str(base_python), "-S", "-c", BUNDLE_CHILD, str(unzipped)],
            unzipped,
            {
                **clean,
                # /var/task is read-only on Lambda: only the bytecode shipped in the zip is used.
                "PYTHONDONTWRITEBYTECODE": "1",
                "DJANGO_SECRET_KEY": "cold-start",
                "DJANGO_ALLOWED_HOSTS": "localhost",
                "DJANGO_FORCE_SCRIPT_NAME": "",
                "DATABASE_URL": f"sqlite:///{tmp / 'bundle.sqlite3'}",
                "CM_SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/steps",
            },
        )
    return targets


def _measure(targets: dict, runs: int) -> dict[str, list[tuple[float, str]]]:
    """Wall time of each fresh process, targets interleaved so drift hits all alike."""
    samples: dict[str, list[tuple[float, str]]] = {name: [] for name in targets}
    # Deployed, DEBUG is off: the admin page needs the static manifest, which a deployment
    # builds with collectstatic before packaging. Built once here, not timed.
    _, cwd, env = targets["functions"]
    collect = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"]
    subprocess.run(collect, cwd=cwd, env=env, check=True, capture_output=True)
    # Deployed, the project's modules are bytecode (the Lambda bundle and the Cloud Run image
    # compile them), as the installed Django's are: compile both projects' own sources too, so
    # that PYTHONDONTWRITEBYTECODE in the caller's environment does not time the compiler.
    for folder, packages in (
        (REPO, ["container_manager", "functions"]),
        (targets["bare"][1], ["bare"]),
    ):
        compile_all = [sys.executable, "-m", "compileall", "-q", *packages]
        subprocess.run(compile_all, cwd=folder, check=True, capture_output=True)
    for _ in range(runs + 1):  # the first round warms the OS file cache and is dropped
        for name, (command, cwd, env) in targets.items():
            start = time.perf_counter()
            done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            if done.returncode:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            samples[name].append((elapsed, (done.stdout.strip().splitlines() or [""])[-1]))
    return {name: runs_[1:] for name, runs_ in samples.items()}


def _summarise(samples: dict, runs: int) -> dict:
    bare = statistics.median(t for t, _ in samples["bare"])
    bare_min = min(t for t, _ in samples["bare"])
    targets = {}
    for name, runs_ in samples.items():
        times = [t for t, _ in runs_]
        median = statistics.median(times)
        targets[name] = {
            "median_ms": round(median * 1000, 1),
            "min_ms": round(min(times) * 1000, 1),
            "max_ms": round(max(times) * 1000, 1),
            "ratio_to_bare": round(median / bare, 3),
            # Fastest against fastest: less moved by other load on a shared machine.
            "min_ratio_to_bare": round(min(times) / bare_min, 3),
            "sdks_loaded": runs_[-1][1],
        }
    return {
        "django": django.get_version(),
        "python": sys.version.split()[0],
        "runs": runs,
        "target_ratio": TARGET_RATIO,
        "met": targets["functions"]["ratio_to_bare"] <= TARGET_RATIO,
        "targets": targets,
        "machine": {"cpus": os.cpu_count(), "platform": sys.platform},
    }


if __name__ == "__main__":
    main()
