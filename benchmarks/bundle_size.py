"""Size of the zappa bundle of a stage, zipped and unzipped, and what takes the room.

Builds it with infra/lambda-bundle.sh unless --zip names one already built.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import zipfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Lambda's limit for a function's unzipped code (and layers).
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", default="aws")
    parser.add_argument("--zip", type=Path, help="an already built bundle")
    parser.add_argument(
        "--output", type=Path, default=REPO / "benchmarks" / "results" / "bundle_size.json"
    )
    args = parser.parse_args()
    zip_path = args.zip or _build(args.stage)
    result = {"stage": args.stage, **measure(zip_path)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    mib = 1024 * 1024
    share = result["unzipped_bytes"] / LAMBDA_UNZIPPED_LIMIT
    print(f"{zip_path.name}: {result['zipped_bytes'] / mib:.1f} MiB zipped, "
          f"{result['unzipped_bytes'] / mib:.1f} MiB unzipped in {result['files']} files "
          f"({share:.0%} of Lambda's 250 MiB)")  # fmt: skip
    for name, size in result["largest_top_level"].items():
        print(f"  {size / mib:6.1f} MiB  {name}")
    print(f"written to {args.output}")


def measure(zip_path: Path) -> dict:
    """Bytes zipped and unzipped, file count, and the ten largest top-level entries."""
    with zipfile.ZipFile(zip_path) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
    by_top: Counter[str] = Counter()
    for info in infos:
        by_top[info.filename.split("/", 1)[0]] += info.file_size
    return {
        "zipped_bytes": zip_path.stat().st_size,
        "unzipped_bytes": sum(info.file_size for info in infos),
        "files": len(infos),
        "largest_top_level": dict(by_top.most_common(10)),
    }


def _build(stage: str) -> Path:
    built = subprocess.run(
        ["bash", str(REPO / "infra" / "lambda-bundle.sh"), stage],
        cwd=REPO, check=True, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    return Path(built.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
