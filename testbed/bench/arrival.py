"""`make bench-arrival`: how well the arrival engine keeps its schedule, and what one Locust
process can drive compared with wrk, side by side in one run against the bare app.

1. The open model at a constant rate (default: scenarios/bare-constant.toml, 300 starts/s for
   60 s): target and achieved start rate, late and dropped starts, both latency views.
2. Throughput: one Locust process (closed model, no think time) and wrk, same connections and
   duration, alternating A B A B after a warm-up; the median of the per-pair ratios, with min/max.

A command, not a test: it prints its figures with the machine, versions and settings.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.verdicts import MAX_LATE_RATIO, MIN_RATE_RATIO
from testbed.bench.bare_app import running_bare_app
from testbed.processes import LOCUSTFILE, REPOSITORY


def main(argv: Sequence[str] | None = None) -> int:
    """Run both parts of the benchmark and print the figures."""
    args = _parser().parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench-arrival: wrk is not installed (Debian package 'wrk')", file=sys.stderr)
        return 2
    out = Path(args.out) / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    _print_header(args)
    with running_bare_app(workers=args.workers, threads=args.threads, log_path=out / "bare-app.log") as url:
        print(
            f"bare app: {url} (gunicorn gthread, {args.workers} workers x {args.threads} threads)\n",
            flush=True,
        )
        schedule_kept = _open_model(args, url, out)
        _throughput(args, url, out)
    print(f"\nraw output: {out}")
    return 0 if schedule_kept else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench.arrival", description=__doc__)
    parser.add_argument(
        "--scenario", default="scenarios/bare-constant.toml", help="open-model scenario to run"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the bare app (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections = Locust users (16)")
    parser.add_argument("--pair-s", type=float, default=10.0, help="duration of each throughput run (10 s)")
    parser.add_argument("--pairs", type=int, default=3, help="A B pairs of Locust and wrk runs (3)")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="wrk warm-up before the pairs (3 s)")
    parser.add_argument("--out", default="results/bench-arrival", help="where raw outputs go")
    return parser


def _print_header(args: argparse.Namespace) -> None:
    versions = {
        name: _version(name) for name in ("locust", "gevent", "geventhttpclient", "falcon", "gunicorn")
    }
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout + wrk.stderr).split("Copyright")[0].strip() or "unknown"
    print("== bench-arrival ==")
    print(f"date:     {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"machine:  {platform.platform()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    print(f"python:   {platform.python_version()} ({sys.executable})")
    print(
        "versions: "
        + ", ".join(f"{name} {version}" for name, version in versions.items())
        + f", {wrk_version}"
    )
    print(
        f"settings: scenario {args.scenario}; throughput: {args.connections} connections/users, "
        f"{args.pairs} pairs of {args.pair_s:g} s after {args.warmup_s:g} s warm-up, "
        "wrk -t1 vs 1 Locust process"
    )
    print("note:     load generator and server share this machine's cores; read ratios, not absolutes\n")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _locust(args: list[str], out: Path, name: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", *args]
    result = subprocess.run(
        command, cwd=REPOSITORY, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    (out / f"{name}.stdout").write_text(result.stdout, encoding="utf-8")
    (out / f"{name}.stderr").write_text(result.stderr, encoding="utf-8")
    return result


def _open_model(args: argparse.Namespace, url: str, out: Path) -> bool:
    print("-- 1. open model: does the engine keep its schedule? --", flush=True)
    report_path = out / "open-model.json"
    result = _locust(
        ["--scenario", args.scenario, "-H", url, "--only-summary", "--arrival-json", str(report_path)],
        out,
        "open-model",
        timeout_s=600,
    )
    if not report_path.exists():
        print(f"the open-model run wrote no report (exit {result.returncode}); see {out}")
        return False
    report = json.loads(report_path.read_text(encoding="utf-8"))
    printed = result.stdout.split("Arrivals:", 1)
    print("Arrivals:" + printed[1].split("\nType ", 1)[0] if len(printed) == 2 else "(no printed report)")
    kept = True
    for flow in report["flows"]:
        rate_ratio = flow["achieved_rate_per_s"] / flow["target_rate_per_s"]
        late_ratio = flow["late"] / flow["started"] if flow["started"] else 1.0
        verdicts = (
            f"achieved {flow['achieved_rate_per_s']:.2f}/s of {flow['target_rate_per_s']:.2f}/s "
            f"= {rate_ratio:.2%} (needs >= {MIN_RATE_RATIO:.0%})",
            f"late {flow['late']} of {flow['started']} = {late_ratio:.2%} (needs < {MAX_LATE_RATIO:.0%})",
            f"dropped {flow['dropped']}",
        )
        ok = rate_ratio >= MIN_RATE_RATIO and late_ratio < MAX_LATE_RATIO and flow["dropped"] == 0
        kept = kept and ok
        print(f"RESULT {flow['name']}: " + "; ".join(verdicts) + f" -> {'OK' if ok else 'NOT MET'}")
    print(flush=True)
    return kept


def _throughput(args: argparse.Namespace, url: str, out: Path) -> None:
    print("-- 2. throughput: one Locust process vs wrk, same connections and duration --", flush=True)
    scenario = out / "throughput.toml"
    scenario.write_text(
        f'name = "bench-throughput"\n[shape]\nkind = "constant"\nduration_s = {args.pair_s}\n'
        f'[[flows]]\nname = "constant"\nflow = "bare.constant"\nrate_per_s = 1\n'
        f"[closed]\nusers = {args.connections}\nthink_time_s = 0\n",
        encoding="utf-8",
    )
    _wrk(args, url, args.warmup_s, out, "wrk-warmup")
    ratios = []
    for pair in range(1, args.pairs + 1):
        locust_rps = _locust_rps(args, url, scenario, out, f"locust-{pair}")
        wrk_rps = _wrk(args, url, args.pair_s, out, f"wrk-{pair}")
        ratios.append(locust_rps / wrk_rps)
        print(
            f"pair {pair}: locust {locust_rps:8.0f} req/s   wrk {wrk_rps:8.0f} req/s   ratio {ratios[-1]:.3f}"
        )
    print(
        f"RESULT locust/wrk requests/s: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}) over {len(ratios)} pairs; one Locust process "
        f"(FastHttpSession, closed model, {args.connections} users, no think time) vs wrk -t1 "
        f"-c{args.connections}, {args.pair_s:g} s each, GET /constant"
    )


def _locust_rps(args: argparse.Namespace, url: str, scenario: Path, out: Path, name: str) -> float:
    stats_path = out / f"{name}.stats.json"
    stem = str(stats_path.with_suffix(""))  # locust adds ".json"
    _locust(
        [
            "--scenario",
            str(scenario),
            "--load-model",
            "closed",
            "-H",
            url,
            "--only-summary",
            "--json-file",
            stem,
        ],
        out,
        name,
        timeout_s=args.pair_s + 60,
    )
    entries: list[dict[str, Any]] = json.loads(stats_path.read_text(encoding="utf-8"))
    entry = next(item for item in entries if item["name"] == "/constant")
    return float(entry["num_requests"]) / float(entry["last_request_timestamp"] - entry["start_time"])


def _wrk(args: argparse.Namespace, url: str, duration_s: float, out: Path, name: str) -> float:
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{max(1, round(duration_s))}s", f"{url}/constant"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 30, check=True)
    (out / f"{name}.txt").write_text(result.stdout, encoding="utf-8")
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk's output: {result.stdout}")
    time.sleep(0.5)  # let the sockets close before the next run
    return float(match.group(1))


if __name__ == "__main__":
    raise SystemExit(main())
