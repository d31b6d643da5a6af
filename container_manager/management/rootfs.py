"""A root filesystem, as a tar stream, that runs this interpreter, chosen distributions and code.

Standard library only: ``build_task_image`` and ``infra/python_rootfs.py`` write it for ``docker
import``, so a machine without a registry gets an image of the Python it already runs.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata as md
import io
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

#: Where the distributions go in the image (on ``PYTHONPATH``).
SITE = "/opt/cm/site-packages"
#: Where the project's code goes in the image (the working directory, first on ``PYTHONPATH``).
APP = "/app"
#: What ``docker import`` is told about the image: its environment, directory and command.
IMAGE_CHANGES = (
    "ENV PATH=/usr/local/bin:/usr/bin:/bin",
    f"ENV PYTHONPATH={APP}:{SITE}",
    "ENV PYTHONDONTWRITEBYTECODE=1",
    "ENV PYTHONUNBUFFERED=1",
    f"WORKDIR {APP}",
    'CMD ["python"]',
)
#: Project files and directories left out by default: hidden ones (VCS data, caches), compiled
#: modules, ``node_modules``, SQLite databases. Virtualenvs are found by their ``pyvenv.cfg``.
DEFAULT_EXCLUDES = (".*", "__pycache__", "node_modules", "*.sqlite3", "*.sqlite3-*", "*.pyc")
SKIP_STDLIB = {"site-packages", "dist-packages", "test", "tests", "idlelib", "tkinter",
               "turtledemo", "ensurepip", "lib2to3", "pydoc_data"}  # fmt: skip
#: Compiled modules of this interpreter go in (the image never writes any): a start without
#: them compiles Django from source every time, seconds per task.
PYC_SUFFIX = f".{sys.implementation.cache_tag}.pyc"

#: An entry of the tar: its name in the image -> the file on this machine.
Entries = dict[str, Path]


class RootfsError(Exception):
    """What cannot be packed: a distribution that is not installed, a platform without ``ldd``."""


def interpreter_entries() -> Entries:
    """The interpreter, its standard library and every shared library ``ldd`` names for them."""
    if not sys.platform.startswith("linux"):
        raise RootfsError(
            f"the interpreter of this machine ({sys.platform}) cannot run in a Linux container; "
            "build from a Dockerfile instead"
        )
    executable = Path(os.path.realpath(sys._base_executable))
    entries = {_inside(executable): executable}
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    binaries = [executable]
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = [d for d in dirs if d not in SKIP_STDLIB and not d.startswith("config-")]
        for name in files:
            path = Path(root) / name
            # Tk and X11 libraries: nothing a task needs.
            if name.startswith("_tkinter") or not wanted(path):
                continue
            entries[_inside(path)] = path
            if name.endswith(".so"):
                binaries.append(path)
    for library in shared_libraries(binaries):
        entries[library.lstrip("/")] = Path(os.path.realpath(library))
    return entries


def shared_libraries(binaries: Iterable[Path]) -> list[str]:
    """Paths of the shared libraries (and the loader) the binaries need, as ``ldd`` names them."""
    try:
        output = subprocess.run(
            ["ldd", *map(str, binaries)], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError as exc:
        raise RootfsError("ldd is not installed: it finds the interpreter's libraries") from exc
    found = set()
    for line in output.splitlines():
        match = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s+(/\S+)\s+\(", line)
        if match:
            found.add(match.group(1))
    return sorted(found)


def closure(names: Iterable[str]) -> list[md.Distribution]:
    """The installed distributions ``names`` need, recursively, extras left out.

    A requirement whose marker names an ``extra`` is left out; one with another marker
    (``sys_platform == "win32"``) goes in when it is installed, as pip installed it only
    where the marker held. ``packaging`` is not needed: it is no dependency of this app.

    >>> sorted(d.metadata["Name"].lower() for d in closure(["sqlparse"]))
    ['sqlparse']
    """
    seen: dict[str, md.Distribution] = {}
    todo = [(name, True) for name in names]
    while todo:
        name, asked = todo.pop()
        key = _key(name)
        if key in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            if asked:
                raise RootfsError(f"{name} is not installed in {sys.prefix}") from None
            continue
        seen[key] = dist
        for text in dist.requires or []:
            requirement, _, marker = text.partition(";")
            if re.search(r"\bextra\s*==", marker):
                continue
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
            if match:
                todo.append((match.group(1), not marker.strip()))
    return list(seen.values())


def distribution_entries(dists: Iterable[md.Distribution]) -> Entries:
    """The distributions' installed files (no scripts, no caches but this interpreter's), under
    ``SITE``; a package installed in editable mode goes in from where it is imported."""
    entries: Entries = {}
    for dist in dists:
        for file in dist.files or []:
            if ".." in file.parts:
                continue
            source = Path(str(dist.locate_file(file)))
            if source.is_file() and wanted(source):
                entries[f"{SITE.lstrip('/')}/{file.as_posix()}"] = source
            if source.suffix == ".py":
                compiled = source.parent / "__pycache__" / (source.stem + PYC_SUFFIX)
                if compiled.is_file():
                    arcname = file.parent / "__pycache__" / compiled.name
                    entries[f"{SITE.lstrip('/')}/{arcname.as_posix()}"] = compiled
    return entries


def package_entries(package_dir: Path, under: str = SITE) -> Entries:
    """Every file of the package in ``package_dir`` (compiled modules of this interpreter
    only), under ``under``: for a package imported from a checkout (editable install)."""
    base = package_dir.parent
    return {
        f"{under.lstrip('/')}/{path.relative_to(base).as_posix()}": path
        for path in sorted(package_dir.rglob("*"))
        if path.is_file() and wanted(path)
    }


def project_entries(project_dir: Path, excludes: Iterable[str] = DEFAULT_EXCLUDES) -> Entries:
    """The project's files under ``APP``: all but those an exclude pattern names (a file's or
    a directory's name, or its path in the project) and virtualenvs (a ``pyvenv.cfg``)."""
    patterns = tuple(excludes)
    entries: Entries = {}
    for root, dirs, files in os.walk(project_dir):
        here = Path(root)
        dirs[:] = sorted(
            d
            for d in dirs
            if not _excluded(here / d, project_dir, patterns)
            and not (here / d / "pyvenv.cfg").exists()
        )
        for name in sorted(files):
            path = here / name
            if path.is_file() and not _excluded(path, project_dir, patterns) and wanted(path):
                entries[f"{APP.lstrip('/')}/{path.relative_to(project_dir).as_posix()}"] = path
    return entries


def wanted(path: Path) -> bool:
    """Not a compiled module, or one of this interpreter's plain (not optimised) ones."""
    return "__pycache__" not in path.parts or path.name.endswith(PYC_SUFFIX)


def write_tar(stream: IO[bytes], entries: Entries) -> None:
    """Write the root filesystem: a skeleton (``/tmp``, ``/etc/passwd``...), the entries, and
    ``/usr/local/bin/python`` linked to the interpreter."""
    with tarfile.open(fileobj=stream, mode="w|") as tar:
        _add_skeleton(tar)
        for arcname, source in sorted(entries.items()):
            tar.add(source, arcname=arcname, recursive=False)
        target = os.path.realpath(sys._base_executable)
        for name in ("usr/local/bin/python", "usr/local/bin/python3"):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)


def listing(entries: Entries) -> Iterator[str]:
    """One ``name<TAB>source`` line per entry, sorted: what would go in."""
    for arcname, source in sorted(entries.items()):
        yield f"{arcname}\t{source}\n"


def _inside(path: Path) -> str:
    return str(path).lstrip("/")


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _excluded(path: Path, project_dir: Path, patterns: tuple[str, ...]) -> bool:
    relative = path.relative_to(project_dir).as_posix()
    return any(
        fnmatch.fnmatch(path.name, pattern) or fnmatch.fnmatch(relative, pattern)
        for pattern in patterns
    )


def _add_skeleton(tar: tarfile.TarFile) -> None:
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
