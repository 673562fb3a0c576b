"""Ids: a prefix and random characters of the id alphabet, every character equally likely."""

from __future__ import annotations

from collections import Counter

from backbone.platform.ids import ID_ALPHABET, ID_LENGTH, Ids, is_valid_id


def test_new_ids_have_the_prefix_the_length_and_only_the_alphabet() -> None:
    ids = Ids()
    made = [ids.new("MSG") for _ in range(1000)]
    assert all(is_valid_id(made_id, "MSG") and len(made_id) == ID_LENGTH for made_id in made)
    assert len(set(made)) == len(made)


def test_every_character_of_the_alphabet_is_equally_likely() -> None:
    ids = Ids()
    counts = Counter("".join(ids.new("X")[1:] for _ in range(20_000)))
    assert set(counts) == set(ID_ALPHABET)
    expected = 20_000 * (ID_LENGTH - 1) / len(ID_ALPHABET)
    # Pearson's chi-squared over 61 degrees of freedom: 120 is its 99.999th percentile, so this
    # fails by chance once in a hundred thousand runs, while bytes mapped without rejection (the
    # first 8 characters 25 % more likely) score in the thousands.
    chi_squared = sum((count - expected) ** 2 / expected for count in counts.values())
    assert chi_squared < 120


def test_secrets_take_the_alphabet_they_are_given() -> None:
    secret = Ids().secret(64, alphabet="ab")
    assert len(secret) == 64
    assert set(secret) <= {"a", "b"}


def test_a_seeded_source_repeats_its_ids() -> None:
    assert Ids(7).new("REL") == Ids(7).new("REL")
    assert Ids(7).secret(12) == Ids(7).secret(12)
