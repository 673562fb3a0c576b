"""Whether a scenario's faults can be applied to a landscape profile, checked before anything starts.

A fault acts on a tier the profile has (a worker to kill, a private server to stop, a broker to
cut, a budget to change); one that cannot be applied is a mistake of the command line, reported
with every other one at once.
"""

from __future__ import annotations

from scenarios.landscape import LandscapeProfile
from scenarios.schema import FaultSpec, Scenario

# What a fault needs the launcher to put in front of a server.
PROXIED_BY_KIND = {"cut-broker": "broker", "slow-database": "database"}


def fault_problems(scenario: Scenario, profile: LandscapeProfile) -> list[str]:
    """One line per fault the profile cannot take, naming the scenario file and the fault."""
    problems = []
    for index, fault in enumerate(scenario.faults):
        if problem := _problem(fault, profile):
            problems.append(f"{scenario.source}: faults[{index}] ({fault.label}): {problem}")
    return problems


def proxied_servers(scenario: Scenario) -> frozenset[str]:
    """The servers the landscape must reach through a proxy of its own for these faults."""
    return frozenset(
        PROXIED_BY_KIND[fault.kind] for fault in scenario.faults if fault.kind in PROXIED_BY_KIND
    )


def _problem(fault: FaultSpec, profile: LandscapeProfile) -> str | None:
    name = profile.name
    if fault.kind == "cut-broker" and profile.bus.kind != "rabbitmq":
        return f"the profile {name} has no broker tier (bus.kind = {profile.bus.kind!r}, not rabbitmq)"
    if fault.kind == "stop-database" and not profile.database.private:
        return (
            f"the profile {name} has no database server of its own to stop (database.server = "
            '"private" needed; a shared server is never touched)'
        )
    if fault.kind == "slow-database" and profile.database.kind != "postgresql":
        return (
            f"the profile {name} has no PostgreSQL database tier (database.kind = {profile.database.kind!r})"
        )
    processes = [process for process in profile.processes() if process.tier == fault.tier]
    if fault.kind in ("kill-node", "kill-worker", "throttle-tier"):
        if not processes:
            tiers = sorted({process.tier for process in profile.processes()})
            return f"the profile {name} has no {fault.tier} tier (its tiers: {', '.join(tiers)})"
        roles = [process.role for process in processes]
        if fault.target and fault.target not in roles:
            return (
                f"no process {fault.target!r} in the {fault.tier} tier of {name} (it has {', '.join(roles)})"
            )
    if fault.kind == "throttle-tier" and not any(process.cpu_limit is not None for process in processes):
        return f"the {fault.tier} tier of {name} has no CPU budget to change (set its cpu_limit)"
    return None
