"""`testbed`: the load side's command line; it parses and hands each command to its wing.

    testbed run | capacity | report   one experiment, the capacity search, their reports   (testbed/run/)
    testbed sweep                     capacity across landscapes, the recommendation  (testbed/sweep/)
    testbed compare | history | site  what lies under results/         (testbed/run/results.py)
    testbed up | down | profile       landscapes as local processes   (testbed/landscape/)
    testbed seed                      identity pools                  (testbed/seed.py)
    testbed deploy render [--check]   compose files, Kubernetes overlays (testbed/deploy/)

Benchmarks are `make bench*` commands (testbed/bench/).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from testbed.deploy.commands import add_deploy_commands
from testbed.landscape.commands import add_landscape_commands
from testbed.run.commands import add_run_commands
from testbed.run.results import add_results_commands
from testbed.seed import add_seed_command
from testbed.sweep.commands import add_sweep_command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="testbed", description="The backbone testbed's load side.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_seed_command(commands)
    add_landscape_commands(commands)
    add_run_commands(commands)
    add_sweep_command(commands)
    add_results_commands(commands)
    add_deploy_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
