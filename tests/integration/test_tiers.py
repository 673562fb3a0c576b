"""The tiers module's own parts: what the Admin API tests do not reach."""

from __future__ import annotations

from falcon import testing

from backbone.wiring import Services
from tests.helpers.api import onboard


def test_a_lookup_reads_a_tier_created_after_its_snapshot(services: Services) -> None:
    """Lists built from a lookup must name a tier assigned between the lookup and their query."""
    tier_of = services.tiers.lookup()
    basic = services.tiers.find_by_name_or_id("Basic")
    assert basic is not None
    assert tier_of(basic.id) == basic
    later = services.tiers.create("Later")
    assert tier_of(later.id) == later


def test_the_tier_overviews_count_the_identities_of_each_tier(
    services: Services, api: testing.TestClient
) -> None:
    """The counts are devices' data, asked for by the tiers service."""
    onboard(api)
    moved = onboard(api)
    premium = services.tiers.create("Premium")
    services.identities.change_tier(moved.address, premium.id)
    counts = {overview.tier.name: overview.number_of_identities for overview in services.tiers.overviews()}
    assert counts == {"Basic": 1, "Premium": 1, "Queued for Deletion": 0}
    assert services.identities.what_uses_tier(premium.id) == "identities are assigned to it."
