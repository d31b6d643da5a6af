"""Write the blocks docs/quickstart.md marks for CI, one file each, and a manifest of them.

A block is the fenced code block right after a ``<!-- quickstart: ACTION [ARG] -->`` comment;
ACTION is ``run``, ``background NAME``, ``append FILE`` or ``create FILE``. The manifest has
one ``NUMBER<TAB>ACTION<TAB>ARG`` line per block, in the page's order.
"""

import re
import sys
from pathlib import Path

MARKER = re.compile(r"^<!-- quickstart: (run|background|append|create)(?: (\S+))? -->$")
ACTIONS_WITH_ARG = {"background", "append", "create"}


def blocks(text: str) -> list[tuple[str, str, str]]:
    """``(action, arg, code)`` of each marked block; ValueError naming a malformed marker.

    >>> blocks("<!-- quickstart: append a.py -->\\n```python\\nx = 1\\n```\\n")
    [('append', 'a.py', 'x = 1\\n')]
    """
    lines = text.splitlines()
    found = []
    for number, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if not match:
            if line.strip().startswith("<!-- quickstart"):
                raise ValueError(f"line {number + 1}: malformed marker {line.strip()!r}")
            continue
        action, arg = match.group(1), match.group(2) or ""
        if (action in ACTIONS_WITH_ARG) != bool(arg):
            raise ValueError(f"line {number + 1}: {action!r} takes an argument iff it names one")
        start = number + 1
        if start >= len(lines) or not lines[start].startswith("```"):
            raise ValueError(f"line {number + 1}: the marker is not followed by a fenced block")
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
        found.append((action, arg, "\n".join(lines[start + 1 : end]) + "\n"))
    return found


def main() -> None:
    page, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for number, (action, arg, code) in enumerate(blocks(page.read_text())):
        (out / f"{number:02d}").write_text(code)
        manifest.append(f"{number:02d}\t{action}\t{arg}\n")
    (out / "manifest").write_text("".join(manifest))


if __name__ == "__main__":
    main()
