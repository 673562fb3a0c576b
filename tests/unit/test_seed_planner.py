"""The planner: deterministic, pool counts met per identity where possible, gaps said where not."""

from __future__ import annotations

from collections import Counter

import pytest

from loadtests.seeding.planner import Plan, plan
from scenarios.pool_schema import load_pool_config


@pytest.fixture(scope="module")
def light() -> Plan:
    return plan(load_pool_config("light"), seed=1)


def test_the_same_seed_gives_the_same_plan_and_another_seed_other_identities(light: Plan) -> None:
    again = plan(load_pool_config("light"), seed=1)
    assert again.identities == light.identities
    assert again.relationships == light.relationships
    other = plan(load_pool_config("light"), seed=2)
    assert not {i.address for i in other.identities} & {i.address for i in light.identities}


def test_light_pool_is_met_exactly_for_every_identity(light: Plan) -> None:
    assert light.gaps == ()
    config = light.config
    for identity in light.identities:
        pool = config.pool(identity.pool)
        expected = light.expected(identity.number)
        assert expected.relationships == pool.number_of_relationships, identity
        assert expected.messages == pool.total_number_of_messages, identity
        assert expected.devices == pool.number_of_devices
        assert expected.datawallet_modifications == pool.number_of_datawallet_modifications
    assert light.totals == {
        "identities": 542,
        "devices": 1292,
        "relationship_templates": 752,
        "relationships": 1800,
        "messages": 16500,
        "challenges": 8300,
        "datawallet_modifications": 10050,
    }


def test_relationships_join_an_app_and_a_connector_once_on_one_of_its_templates(light: Plan) -> None:
    people = light.identities
    pairs = Counter((r.app, r.connector) for r in light.relationships)
    assert max(pairs.values()) == 1
    for relationship in light.relationships:
        assert people[relationship.app].type == "app"
        assert people[relationship.connector].type == "connector"
        assert 0 <= relationship.template < people[relationship.connector].templates
    from_connector = sum(r.messages_from_connector for r in light.relationships)
    assert from_connector / light.totals["messages"] == pytest.approx(0.75, abs=0.01)


def test_addresses_use_the_landscape_domain() -> None:
    domain = plan(load_pool_config("test"), did_domain="enmeshed.example.org")
    assert all(i.address.startswith("did:e:enmeshed.example.org:dids:") for i in domain.identities)
    assert all(i.key.address("enmeshed.example.org") == i.address for i in domain.identities[:5])


@pytest.mark.slow
def test_heavy_pool_says_what_cannot_be_met() -> None:
    heavy = plan(load_pool_config("heavy"))
    assert heavy.totals["identities"] == 10560
    assert heavy.totals["relationship_templates"] == 520010
    assert heavy.totals["datawallet_modifications"] == 4525000
    assert heavy.totals["relationships"] == 20500
    assert (
        "planner: apps want 20,500 relationships, connectors 20,540; every relationship joins one of each, "
        "so the plan has 20,500"
    ) in heavy.gaps
    assert any(
        line.startswith("planner: pool c3 (ConnectorHeavy) wants 402,450 messages") for line in heavy.gaps
    )
    # The smaller side is met exactly: every app gets its messages.
    apps = [i for i in heavy.identities if i.type == "app"]
    assert all(
        heavy.expected(i.number).messages == heavy.config.pool(i.pool).total_number_of_messages for i in apps
    )
