"""Write to stdout a tar of a root filesystem that runs this interpreter and the project.

Used by infra/python-image.sh (``docker import``); run by the venv whose packages go in. The
packing is ``container_manager.management.rootfs`` (standard library only), which
``manage.py build_task_image`` uses for a project of one's own.
"""

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's code, whatever the venv installed

from container_manager.management import rootfs  # noqa: E402 - after the path is set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--list", action="store_true", help="print what would go in, no tar")
    parser.add_argument("--extra", action="append", default=[], help="a distribution to add")
    args = parser.parse_args()
    try:
        entries = rootfs.interpreter_entries()
        dists = rootfs.closure(["container_manager", *args.extra])
    except rootfs.RootfsError as exc:
        sys.exit(f"python_rootfs: {exc}")
    # This checkout's packages go under /app below; the venv holds only an editable link.
    entries.update(
        rootfs.distribution_entries(d for d in dists if d.metadata["Name"] != "container_manager")
    )
    entries.update(project_files())
    if args.list:
        sys.stdout.writelines(rootfs.listing(entries))
        return
    rootfs.write_tar(sys.stdout.buffer, entries)


def project_files() -> dict[str, Path]:
    """The project's packages and the tests' top-level modules, under ``APP``."""
    entries = {}
    for package in ("container_manager", "functions"):
        entries.update(rootfs.package_entries(REPO / package, rootfs.APP))
    for path in sorted((REPO / "tests").glob("*.py")):
        entries[f"{rootfs.APP.lstrip('/')}/tests/{path.name}"] = path
    return entries


if __name__ == "__main__":
    main()
