"""Write to stdout a tar of a root filesystem that runs this interpreter and the project.

Used by infra/python-image.sh (``docker import``); run by the venv whose packages go in.
"""

import argparse
import importlib.metadata as md
import io
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

SITE = "/opt/cm/site-packages"
APP = "/app"
SKIP_STDLIB = {"site-packages", "dist-packages", "test", "tests", "idlelib", "tkinter",
               "turtledemo", "ensurepip", "lib2to3", "pydoc_data"}  # fmt: skip
#: Compiled modules of this interpreter go in (the image never writes any): a start without
#: them compiles Django from source every time, seconds per task.
PYC_SUFFIX = f".{sys.implementation.cache_tag}.pyc"
REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--list", action="store_true", help="print what would go in, no tar")
    parser.add_argument("--extra", action="append", default=[], help="a distribution to add")
    args = parser.parse_args()
    entries = dict(interpreter_files())
    for dist in closure(["container_manager", *args.extra]):
        entries.update(distribution_files(dist))
    entries.update(project_files())
    if args.list:
        sys.stdout.writelines(f"{arc}\t{src}\n" for arc, src in sorted(entries.items()))
        return
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
        add_skeleton(tar)
        for arcname, source in sorted(entries.items()):
            tar.add(source, arcname=arcname, recursive=False)
        link(tar, "usr/local/bin/python", os.path.realpath(sys._base_executable))
        link(tar, "usr/local/bin/python3", os.path.realpath(sys._base_executable))


def interpreter_files():
    """The interpreter, its standard library and every shared library ``ldd`` names for them."""
    executable = Path(os.path.realpath(sys._base_executable))
    yield str(executable).lstrip("/"), executable
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    binaries = [executable]
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = [d for d in dirs if d not in SKIP_STDLIB and not d.startswith("config-")]
        for name in files:
            path = Path(root) / name
            if name.startswith("_tkinter"):
                continue  # Tk and X11 libraries: nothing a task needs
            if not wanted(path):
                continue
            yield str(path).lstrip("/"), path
            if name.endswith(".so"):
                binaries.append(path)
    for library in shared_libraries(binaries):
        yield library.lstrip("/"), Path(os.path.realpath(library))


def shared_libraries(binaries):
    """Paths of the shared libraries (and the loader) the binaries need."""
    found = set()
    output = subprocess.run(["ldd", *map(str, binaries)], capture_output=True, text=True).stdout
    for line in output.splitlines():
        match = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s+(/\S+)\s+\(", line)
        if match:
            found.add(match.group(1))
    return sorted(found)


def closure(names):
    """The distributions ``names`` need, recursively (markers evaluated, extras left out)."""
    environment = {**default_environment(), "extra": ""}
    seen, todo = {}, list(names)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            sys.exit(f"python_rootfs: {name} is not installed in {sys.prefix}")
        seen[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                todo.append(requirement.name)
    return [d for key, d in seen.items() if key != "container-manager"]


def distribution_files(dist):
    """A distribution's installed files (no scripts, no caches), under ``SITE``."""
    for file in dist.files or []:
        if ".." in file.parts:
            continue
        source = Path(dist.locate_file(file))
        if source.is_file() and wanted(source):
            yield f"{SITE.lstrip('/')}/{file.as_posix()}", source
        if source.suffix == ".py":
            compiled = source.parent / "__pycache__" / (source.stem + PYC_SUFFIX)
            if compiled.is_file():
                arcname = file.parent / "__pycache__" / compiled.name
                yield f"{SITE.lstrip('/')}/{arcname.as_posix()}", compiled


def wanted(path):
    """Not a compiled module, or one of this interpreter's plain (not optimised) ones."""
    return "__pycache__" not in path.parts or path.name.endswith(PYC_SUFFIX)


def project_files():
    """The project's packages and the tests' top-level modules, under ``APP``."""
    for package in ("container_manager", "functions"):
        for path in sorted((REPO / package).rglob("*")):
            if path.is_file() and wanted(path):
                yield f"{APP.lstrip('/')}/{path.relative_to(REPO).as_posix()}", path
    for path in sorted((REPO / "tests").glob("*.py")):
        yield f"{APP.lstrip('/')}/tests/{path.name}", path


def add_skeleton(tar):
    for name, mode in (("tmp", 0o1777), ("etc", 0o755), ("usr/local/bin", 0o755), ("app", 0o755)):
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, mode
        tar.addfile(info)
    for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                       ("etc/group", "root:x:0:\n")):  # fmt: skip
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, fileobj=io.BytesIO(data))


def link(tar, name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    tar.addfile(info)


if __name__ == "__main__":
    main()
