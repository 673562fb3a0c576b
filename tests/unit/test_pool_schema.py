"""Pool configurations: the shipped ones carry the original's values; bad ones say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.pool_schema import PoolConfigError, load_pool_config, parse_pool_config

SOURCE = Path("x.toml")
GOOD_POOL = """
[[pools]]
type = "app"
name = "AppMedium"
alias = "a2"
amount = 3
number_of_relationships = 1
total_number_of_messages = 2

[[pools]]
type = "connector"
name = "Connector"
alias = "c1"
amount = 1
number_of_relationship_templates = 1
number_of_relationships = 3
total_number_of_messages = 6
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PoolConfigError) as raised:
        parse_pool_config(text, source=SOURCE)
    return raised.value.problems


def test_light_and_heavy_have_the_originals_totals() -> None:
    light = load_pool_config("light")
    assert light.identities == 542
    assert light.total("number_of_devices") == 1292
    assert light.total("number_of_challenges") == 8300
    assert light.total("number_of_datawallet_modifications") == 10050
    assert light.pool("c3").number_of_relationships == 72
    assert light.messages_sent_by_connector_ratio == 0.75
    heavy = load_pool_config("heavy")
    assert heavy.identities == 10560
    assert heavy.total("number_of_devices") == 19060
    assert heavy.total("number_of_relationship_templates") == 520010
    assert heavy.total("number_of_datawallet_modifications") == 4525000
    assert heavy.pool("a3").number_of_datawallet_modifications == 1000
    assert [pool.alias for pool in heavy.pools] == ["e", "a1", "a2", "a3", "c1", "c2", "c3"]
    assert load_pool_config("test").identities == 32


def test_a_valid_config_parses_with_defaults() -> None:
    config = parse_pool_config(GOOD_POOL, source=SOURCE)
    assert config.name == "x"
    assert config.pool("a2").number_of_devices == 1
    assert config.pool("c1").number_of_challenges == 0


def test_every_problem_is_reported_at_once_with_its_key() -> None:
    text = """
colour = "blue"
messages_sent_by_connector_ratio = 1.5

[[pools]]
type = "robot"
name = "R"
alias = "R1"
amount = -1
number_of_devices = 0
"""
    found = problems(text)
    assert (
        "x.toml: colour: unknown key (allowed: name, description, messages_sent_by_connector_ratio, pools)"
        in found
    )
    assert "x.toml: messages_sent_by_connector_ratio: must be a number from 0 to 1, got 1.5" in found
    assert "x.toml: pools[0].type: must be one of never, app, connector, got 'robot'" in found
    assert any(line.startswith("x.toml: pools[0].alias: must be a short lower-case name") for line in found)
    assert "x.toml: pools[0].amount: must be an integer >= 0, got -1" in found
    assert "x.toml: pools[0].number_of_devices: must be an integer >= 1, got 0" in found


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('alias = "c1"', 'alias = "a2"'),
            "x.toml: pools[1].alias: 'a2' is used by an earlier pool",
        ),
        (
            ("number_of_relationship_templates = 1\n", ""),
            "x.toml: pools[1]: connector pool 'c1' has relationships but no template to accept them on",
        ),
        (
            ("number_of_relationships = 3", "number_of_relationships = 4"),
            "x.toml: pools[1].number_of_relationships: 4 relationships per identity need as many app "
            "identities, the config has 3",
        ),
        (
            ('type = "app"', 'type = "never"'),
            "x.toml: pools[0]: pool 'a2' is never used: it cannot have relationships or messages",
        ),
        (
            ("amount = 3\n", "amount = 3\nnumber_of_relationship_templates = 2\n"),
            "x.toml: pools[0].number_of_relationship_templates: only connector pools create templates "
            "(pool 'a2' is app)",
        ),
        (("number_of_relationships = 1\n", "number_of_relationships = true\n"), None),
    ],
)
def test_inconsistent_pools_are_refused(change: tuple[str, str], expected: str | None) -> None:
    found = problems(GOOD_POOL.replace(*change, 1))
    if expected is None:
        assert "x.toml: pools[0].number_of_relationships: must be an integer >= 0, got True" in found
    else:
        assert expected in found


def test_syntax_errors_and_missing_files_are_one_line_each(tmp_path: Path) -> None:
    assert problems("pools = [")[0].startswith("x.toml: (syntax): ")
    with pytest.raises(PoolConfigError, match=r"cannot be read.*known pool configs: heavy, light, sse, test"):
        load_pool_config("no-such-pool")
    assert problems("")[0] == "x.toml: pools: must be a non-empty array of tables ([[pools]])"
