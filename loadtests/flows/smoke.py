"""Flows that need no identity: the smoke load of `testbed run` until the personas' scenarios exist."""

from __future__ import annotations

from loadtests.flows import FlowContext, register_flow


@register_flow("smoke.challenge")
def challenge(context: FlowContext) -> None:
    """Create a challenge anonymously (what every onboarding starts with)."""
    context.client.post("/api/v2/Challenges", name="/api/v2/Challenges")


@register_flow("smoke.tags")
def tags(context: FlowContext) -> None:
    """Fetch the tag collection (anonymous, cacheable)."""
    context.client.get("/api/v2/Tags", name="/api/v2/Tags")
