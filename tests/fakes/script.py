"""What a fake platform "runs": a tiny reading of the job's command, shared by every fake.

``echo WORD`` prints WORD (``>&2``: to stderr), ``exit N`` sets the exit code, ``sleep`` never ends.
"""

import re
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """What the command does: its output lines, its exit code, whether it ever ends."""

    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    exit_code: int = 0
    forever: bool = False


def outcome(args: list[str] | str | None) -> Outcome:
    """Read ``args`` (a list or a shell string) the way the fakes play it."""
    text = args if isinstance(args, str) else " ".join(args or [])
    result = Outcome(forever=bool(re.search(r"\bsleep\b", text)))
    for word, to_stderr in re.findall(r"echo (\S+)( >&2)?", text):
        (result.stderr if to_stderr else result.stdout).append(word.strip("'\";"))
    code = re.search(r"\bexit (\d+)", text)
    if code:
        result.exit_code = int(code.group(1))
    return result
