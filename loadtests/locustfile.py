"""Locust entry point: `locust -f loadtests/locustfile.py --scenario scenarios/<name>.toml`.

The scenario's flows run in the open model by default (iterations start on schedule, latency
corrected for coordinated omission); `--load-model closed` runs them with users and think time
instead. See docs/load-model.md.
"""

from __future__ import annotations

import loadtests.flows.bare  # registers the bare app's flows
import loadtests.flows.smoke  # registers the anonymous smoke flows of `testbed run`
import loadtests.flows.sse  # registers the SSE persona
import loadtests.flows.upstream  # registers the original's ten scenarios
import loadtests.flows.upstream_locust  # noqa: F401  (--credentials, personas, outcome report)
from loadtests.arrival import locust_plugin


class Scenario(locust_plugin.ScenarioShape):
    """The scenario file's time line."""

    abstract = False


class ClosedUser(locust_plugin.ClosedModelUser):
    """Users with think time; only active with --load-model closed."""

    abstract = False
