"""`.ci/run` on a new machine: its helpers work under `set -u`, and tools come in first.

A fresh clone on a machine where nothing was installed by hand must not fail in its last
phase for a tool or a variable the first phases never set up.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CI_RUN = Path(__file__).resolve().parent.parent / ".ci" / "run"


def _prelude() -> str:
    """`.ci/run` up to its first phase: the settings and helper definitions, nothing run."""
    lines = CI_RUN.read_text().splitlines()
    first_phase = next(i for i, line in enumerate(lines) if line.startswith("phase "))
    return "\n".join(lines[:first_phase])


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_helpers_run_under_set_u_after_the_prelude(tmp_path):
    # `log` reads CM_INFRA_NAME; CI once set it for the `.` command alone, so the first
    # apt_install of a later phase died with "CM_INFRA_NAME: unbound variable".
    (tmp_path / ".ci").mkdir()
    (tmp_path / "infra").symlink_to(CI_RUN.parent.parent / "infra")
    script = tmp_path / ".ci" / "run"
    script.write_text(f"{_prelude()}\ntrap - EXIT\nlog 'helpers still work'\n")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "[ci] helpers still work" in done.stderr


def test_only_the_tools_phase_installs_packages():
    # Installing stress-ng inside the last phase hid a broken install path until minute 21.
    body = _prelude()
    functions = re.findall(r"^(\w+)\(\) \{\n(.*?)^\}", body, flags=re.M | re.S)
    installers = sorted(name for name, text in functions if "apt_install" in text)
    assert installers == ["ensure_tools"]
    tools = re.search(r"^CI_TOOLS=\((.*)\)$", body, flags=re.M)
    assert tools and "stress-ng" in tools.group(1).split()
    assert re.search(r"^phase .*ensure_tools$", CI_RUN.read_text(), flags=re.M)


def test_ci_follows_the_quickstart_page_and_the_page_marks_every_step():
    from infra.quickstart_blocks import blocks

    root = CI_RUN.parent.parent
    assert re.search(r"^phase .*\\\n\s+bash infra/quickstart-check\.sh$", CI_RUN.read_text(), re.M)
    marked = blocks((root / "docs" / "quickstart.md").read_text())
    actions = [(action, arg) for action, arg, _ in marked]
    assert ("append", "mysite/settings.py") in actions and ("append", "mysite/urls.py") in actions
    assert [arg for action, arg in actions if action == "background"] == ["web", "worker"]
    code = "".join(text for _, _, text in marked)
    for step in ("startproject", "migrate", "runserver", "process_container_jobs", "enqueue"):
        assert step in code, step
    assert '"transaction_mode": "IMMEDIATE"' in code and '"docker_image"' in code


@pytest.mark.skipif(shutil.which("tar") is None, reason="tar is not installed")
def test_the_admin_screenshots_are_packed_when_the_run_ends(tmp_path):
    (tmp_path / ".ci").mkdir()
    (tmp_path / "infra").symlink_to(CI_RUN.parent.parent / "infra")
    shots = tmp_path / "test-output" / "browser" / "test_pages"
    shots.mkdir(parents=True)
    (shots / "dashboard.png").write_bytes(b"png")
    script = tmp_path / ".ci" / "run"
    script.write_text(f"{_prelude()}\nfalse\n")  # a failed run keeps them too
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "screenshots 1 in" in done.stdout
    listed = subprocess.run(
        ["tar", "-tzf", str(tmp_path / "test-output" / "browser-screenshots.tar.gz")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "browser/test_pages/dashboard.png" in listed.stdout.split()
