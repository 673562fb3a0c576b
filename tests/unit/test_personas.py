"""Personas from a credentials file, shares, leases; outcomes; backbone limits; derived scenarios."""

from __future__ import annotations

import itertools
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from loadtests.flows import registered_flows
from loadtests.flows.upstream import LIFECYCLE_STEPS, lifecycle_partners, recipients_for
from loadtests.outcomes import OutcomeCounts, UnexpectedOutcome, failure_label, rejected
from loadtests.personas import Cast, CastError, IdentityBusy, holding, load_cast
from scenarios.backbone_limits import BackboneLimits, backbone_limits
from scenarios.derive import derived_text, rate_for_starts
from scenarios.schema import ScenarioError, load_scenario, parse_scenario
from testbed.bench.scenario_runs import PRODUCTION_MIX, SCENARIO_FILES

REPOSITORY = Path(__file__).resolve().parents[2]


def entry(
    address: str, pool: str, *, relationships: int = 0, modifications: int = 0, devices: int = 1
) -> dict[str, Any]:
    return {
        "address": address,
        "pool": pool,
        "type": "connector" if pool.startswith("c") else "app",
        "key_seed": "11" * 32,
        "devices": [
            {"id": f"DVC{address}{n}", "username": f"USR{address}{n}", "password": "pw"}
            for n in range(devices)
        ],
        "templates": ["RLT1"] if pool.startswith("c") else [],
        "relationships": [
            {"id": f"REL{address}{n}", "peer": f"peer{n}", "template": "RLT1"} for n in range(relationships)
        ],
        "expected": {"datawallet_modifications": modifications},
    }


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    identities = [
        entry("a1-0", "a1", modifications=5),
        entry("a1-1", "a1"),
        entry("a2-0", "a2", relationships=2, modifications=60, devices=2),
        entry("a3-0", "a3", relationships=5, devices=3),
        entry("c2-0", "c2", relationships=3),
        entry("e-0", "e", modifications=50),
    ]
    document = {
        "format": 1,
        "pool_config": "unit",
        "seed": 1,
        "did_domain": "example.org",
        "client_id": "cid",
        "identities": identities,
    }
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_the_cast_groups_personas_by_pool_and_knows_their_datawallet_index(credentials: Path) -> None:
    cast = load_cast(credentials)
    assert (cast.did_domain, cast.client_id, cast.pool_config) == ("example.org", "cid", "unit")
    assert [p.address for p in cast.group("a")] == ["a1-0", "a1-1", "a2-0", "a3-0"]
    assert [p.address for p in cast.group("c")] == ["c2-0"]
    assert [p.address for p in cast.group("a", "c")] == ["a1-0", "a1-1", "a2-0", "a3-0", "c2-0"]
    assert [p.address for p in cast.group("a3")] == ["a3-0"]
    # Seeded modifications have indexes 0 .. n-1; none: no index yet.
    assert cast.by_address["a1-0"].datawallet_index == 4
    assert cast.by_address["a1-1"].datawallet_index is None
    assert cast.by_address["a2-0"].peers == ("peer0", "peer1")
    # Life cycle partners: connectors without a relationship to the app (entries' peers are peerN).
    assert [c.address for c in lifecycle_partners(cast.by_address["a1-0"], cast)] == ["c2-0"]
    cast.by_address["a1-0"].stuck_peers.add("c2-0")
    assert lifecycle_partners(cast.by_address["a1-0"], cast) == []
    assert cast.pick("a", "c", with_relationships=True, rng=random.Random(1)).relationships


def test_shares_are_disjoint_and_cover_every_identity(credentials: Path) -> None:
    cast = load_cast(credentials)
    shares = [load_cast(credentials, share=(index, 3)) for index in range(3)]
    addresses = [p.address for share in shares for p in share.personas]
    assert sorted(addresses) == sorted(p.address for p in cast.personas)
    assert len(set(addresses)) == len(addresses)
    # Dealt per pool: the first share holds the first identity of every pool.
    assert {p.alias for p in shares[0].personas} == {p.alias for p in cast.personas}
    # Another share's identities stay known, to read as them.
    assert set(shares[1].everyone) == set(cast.by_address)
    with pytest.raises(ValueError, match="outside"):
        load_cast(credentials, share=(3, 3))


def test_pick_says_which_identities_are_missing(credentials: Path) -> None:
    cast = Cast([], did_domain="d", client_id="c", pool_config="empty")
    with pytest.raises(CastError, match="no identity of a\\+c with relationships"):
        cast.pick("a", "c", with_relationships=True)


def test_a_lease_takes_a_free_identity_and_gives_up_when_all_stay_busy(credentials: Path) -> None:
    cast = load_cast(credentials)
    apps = cast.group("a1")
    first = cast.lease(apps, timeout_s=0.05)
    second = cast.lease(apps, timeout_s=0.05)
    assert {first.address, second.address} == {"a1-0", "a1-1"}
    with pytest.raises(IdentityBusy, match="all 2 candidate identities stayed busy"):
        cast.lease(apps, timeout_s=0.05)
    first.lifecycle.release()
    assert cast.lease(apps, timeout_s=0.05) is first


def test_holding_waits_at_most_its_timeout() -> None:
    lock = threading.Lock()
    with holding(lock), pytest.raises(IdentityBusy), holding(lock, timeout_s=0.01):
        pass
    assert not lock.locked()


def test_unreadable_credentials_say_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(CastError, match="testbed seed --pool"):
        load_cast(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"format": 2}', encoding="utf-8")
    with pytest.raises(CastError, match="format 1"):
        load_cast(tmp_path / "other.json")


def test_outcomes_label_business_endings_and_failures_and_merge() -> None:
    from loadtests.client import ApiError

    counts = OutcomeCounts()
    counts.record("07", "ok")
    counts.record("08", rejected("error.platform.validation.message.maxNumberOfUnreceivedMessagesReached"))
    code = "error.platform.validation.syncRun.cannotStartSyncRunWhenAnotherSyncRunIsRunning"
    body = json.dumps({"error": {"code": code}})
    counts.record("09", failure_label(ApiError(400, body)))
    counts.record("09", failure_label(ApiError(502, "Bad Gateway")))
    counts.record("09", failure_label(ConnectionResetError()))
    counts.record(
        "06", failure_label(UnexpectedOutcome("failed:step 3 (connector reject) saw status Active"))
    )
    other = OutcomeCounts()
    other.merge_data(counts.take())
    other.merge_data({"07": {"ok": 2}})
    assert other.counts["07"] == {"ok": 3}
    assert counts.counts == {}
    assert other.failures("09") == {
        f"failed:{code}": 1,
        "failed:HTTP 502": 1,
        "failed:ConnectionResetError": 1,
    }
    assert "failed:step 3 (connector reject) saw status Active" in other.failures()
    assert not other.failures("08")


def test_the_lifecycle_walks_30_steps_and_every_change_is_seen_by_the_peer() -> None:
    assert len(LIFECYCLE_STEPS) == 30
    changes = [(side, action) for side, action in LIFECYCLE_STEPS if action != "fetch"]
    assert [action for _, action in changes] == [
        "create", "reject", "create", "revoke", "create", "accept", "terminate",
        "request-reactivation", "reject-reactivation", "request-reactivation", "revoke-reactivation",
        "request-reactivation", "accept-reactivation", "terminate", "decompose", "decompose",
    ]  # fmt: skip
    for (side, action), (next_side, next_action) in itertools.pairwise(LIFECYCLE_STEPS):
        if action not in ("fetch", "decompose"):
            assert next_action == "fetch", (side, action)
            assert next_side != side, (side, action)
    assert {side for side, action in LIFECYCLE_STEPS if action == "decompose"} == {"app", "connector"}


def test_recipients_stay_within_the_peers_and_the_landscape_maximum(credentials: Path) -> None:
    cast = load_cast(credentials)
    connector = cast.by_address["c2-0"]
    rng = random.Random(3)
    assert len(recipients_for(connector, BackboneLimits(max_message_recipients=20), rng)) == 3
    chosen = recipients_for(connector, BackboneLimits(max_message_recipients=2), rng)
    assert len(chosen) == 2
    assert set(chosen) <= set(connector.peers)


def test_landscape_limits_win_over_the_scenario_over_the_backbone_defaults() -> None:
    assert backbone_limits() == BackboneLimits(20, 20)
    assert backbone_limits({"MAX_MESSAGE_RECIPIENTS": 5}) == BackboneLimits(5, 20)
    assert backbone_limits(
        {"MAX_MESSAGE_RECIPIENTS": 5}, {"BACKBONE_MAX_MESSAGE_RECIPIENTS": "7", "LOG_LEVEL": "WARNING"}
    ) == BackboneLimits(7, 20)
    assert BackboneLimits(7, 30).environment() == {
        "BACKBONE_MAX_MESSAGE_RECIPIENTS": "7",
        "BACKBONE_MAX_UNRECEIVED_MESSAGES_FROM_ONE_SENDER": "30",
    }


def test_scenario_files_name_registered_flows_at_the_original_rates() -> None:
    rates = {}
    for path in SCENARIO_FILES:
        scenario = load_scenario(path, known_flows=registered_flows())
        assert len(scenario.flows) == 1
        assert scenario.flows[0].flow.startswith("upstream.")
        rates[path.stem[:2]] = scenario.rate_per_s(scenario.flows[0])
    assert len(rates) == 10
    assert rates == pytest.approx(
        {
            "01": 1 / 300,
            "02": 1 / 300,
            "03": 100 / 60,
            "04": 1 / 600,
            "05": 1 / 60,
            "06": 1 / 180,
            "07": 1 / 10,
            "08": 1 / 300,
            "09": 32,
            "10": 1 / 600,
        },
        rel=1e-6,
    )
    mix = load_scenario(PRODUCTION_MIX, known_flows=registered_flows())
    assert {flow.name[:2]: mix.rate_per_s(flow) for flow in mix.flows} == pytest.approx(rates, rel=1e-6)


def test_the_backbone_table_accepts_only_the_limits() -> None:
    text = (
        '[shape]\nkind = "constant"\nduration_s = 1\n[[flows]]\nflow = "x"\nrate_per_s = 1\n'
        "[backbone]\nMAX_RECIPIENTS = 3\nMAX_MESSAGE_RECIPIENTS = 0\n"
    )
    with pytest.raises(ScenarioError) as error:
        parse_scenario(text, source=Path("s.toml"))
    assert "s.toml: backbone.MAX_RECIPIENTS: unknown key" in str(error.value)
    assert "s.toml: backbone.MAX_MESSAGE_RECIPIENTS: must be an integer >= 1, got 0" in str(error.value)


def test_a_derived_scenario_keeps_everything_but_duration_and_rates() -> None:
    mix = load_scenario(PRODUCTION_MIX)
    text = derived_text(mix, duration_s=5, rate_of=lambda flow: 2.5, name="smoke")
    derived = parse_scenario(text, source=Path("smoke.toml"), known_flows=registered_flows())
    assert (derived.name, derived.duration_s) == ("smoke", 5)
    assert [flow.rate_per_s for flow in derived.flows] == [2.5] * 10
    assert [(f.name, f.flow, dict(f.params), f.max_in_flight) for f in derived.flows] == [
        (f.name, f.flow, dict(f.params), f.max_in_flight) for f in mix.flows
    ]
    assert derived.backbone == mix.backbone
    bare = load_scenario(REPOSITORY / "scenarios" / "bare-shapes.toml")
    again = parse_scenario(derived_text(bare, duration_s=3, rate_of=lambda f: 1.0), source=Path("b.toml"))
    assert again.slos == bare.slos


def test_benchmark_rates_are_ten_times_or_enough_for_300_starts() -> None:
    assert rate_for_starts(1 / 300, 60) == pytest.approx(5.0)
    assert rate_for_starts(100 / 60, 60) == pytest.approx(1000 / 60)
    assert rate_for_starts(32, 60) == 320


def test_a_lease_takes_only_an_eligible_identity_and_says_when_none_is(credentials: Path) -> None:
    cast = load_cast(credentials)
    apps = cast.group("a1")
    chosen = cast.lease(apps, timeout_s=0.05, eligible=lambda persona: persona.address == "a1-1")
    assert chosen.address == "a1-1"
    # The other one is free but not eligible: only a release of a1-1 would let a lease through.
    with pytest.raises(IdentityBusy):
        cast.lease(apps, timeout_s=0.05, eligible=lambda persona: persona.address == "a1-1")
    assert not apps[0].lifecycle.locked()  # tried and let go again
    chosen.lifecycle.release()
    with pytest.raises(CastError, match="no identity for this scenario"):
        cast.lease(apps, timeout_s=0.05, eligible=lambda persona: False)
