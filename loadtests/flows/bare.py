"""Flows against the bare app (`testbed.bare_app`): the baseline of the load generator itself."""

from __future__ import annotations

from loadtests.flows import FlowContext, register_flow


@register_flow("bare.constant")
def constant(context: FlowContext) -> None:
    """Fetch the constant body once."""
    context.client.get("/constant", name="/constant")


@register_flow("bare.stallable")
def stallable(context: FlowContext) -> None:
    """Fetch the route that can be made to stall (see `testbed.bare_app`)."""
    context.client.get("/stallable", name="/stallable")


@register_flow("bare.bytes")
def download(context: FlowContext) -> None:
    """Download `params.size_bytes` bytes (default 1 kB)."""
    size_bytes = int(context.params.get("size_bytes", 1024))
    context.client.get(f"/bytes/{size_bytes}", name="/bytes/{size}")


@register_flow("bare.mixed")
def mixed(context: FlowContext) -> None:
    """Make three requests in a row: only the first carries the start delay in the corrected view."""
    context.client.get("/constant", name="/constant")
    context.client.post("/sink", data=b"x" * int(context.params.get("upload_bytes", 300)), name="/sink")
    context.client.get("/bytes/1024", name="/bytes/{size}")
