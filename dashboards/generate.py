"""Write every board's JSON into dashboards/grafana/ (`make dashboards`); `--check` only compares.

python -m dashboards.generate           write the JSON files
python -m dashboards.generate --check   exit 1 when a committed file differs from the code's
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.boards import BOARDS
from dashboards.panels import build

GRAFANA_DIR = Path(__file__).resolve().parent / "grafana"


def board_json(name: str) -> str:
    """The JSON of one board exactly as it is committed."""
    return json.dumps(build(BOARDS[name]), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    args = parser.parse_args(argv)
    stale = []
    for name in BOARDS:
        path = GRAFANA_DIR / name
        text = board_json(name)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print(f"out of date (run `make dashboards`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
