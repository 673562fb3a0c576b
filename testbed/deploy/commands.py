"""`testbed deploy render [--check]`: the compose files and Kubernetes overlays from the profiles.

    testbed deploy render            write compose/*.yml, their HAProxy and Prometheus configs,
                                     compose/kubernetes/ (base, overlays, load)
    testbed deploy render --check    write nothing; list every file that differs from its profile

Exit status: 0 written or up to date, 1 a file differs (with --check), 2 an invalid profile.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scenarios.landscape import ProfileError
from testbed.deploy.landscape import REPOSITORY
from testbed.deploy.render import render_files


def add_deploy_commands(commands: Any) -> None:
    """Add `deploy render` to the `testbed` parser; it sets `run`."""
    deploy = commands.add_parser(
        "deploy", help="the landscapes on a container engine: compose files and Kubernetes overlays"
    )
    actions = deploy.add_subparsers(dest="action", required=True)
    render = actions.add_parser(
        "render",
        help="write compose/ from scenarios/landscapes/{dev,stage,prod}.toml",
        description="Render every shipped landscape profile as a compose file and a Kubernetes overlay.",
    )
    render.add_argument(
        "--check", action="store_true", help="write nothing; fail when a committed file differs"
    )
    render.set_defaults(run=_render)


def _render(args: argparse.Namespace) -> int:
    try:
        files = render_files()
    except ProfileError as error:
        print(
            "testbed: invalid profile:\n" + "\n".join(f"  {line}" for line in error.problems), file=sys.stderr
        )
        return 2
    stale = [item for item in files if not item.path.exists() or item.path.read_text() != item.text]
    if args.check:
        for item in stale:
            print(f"testbed: {item.path.relative_to(REPOSITORY)} differs from its profile", file=sys.stderr)
        if stale:
            print("testbed: run `make deploy-files` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    for item in stale:
        item.path.parent.mkdir(parents=True, exist_ok=True)
        item.path.write_text(item.text)
        print(f"wrote {item.path.relative_to(REPOSITORY)}")
    print(f"{len(files)} files, {len(stale)} changed")
    return 0
