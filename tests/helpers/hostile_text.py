"""Text no client should send and the backbone must survive: NUL, unpaired surrogates, controls.

Hypothesis strategies shared by the property test (`tests/integration/test_hostile_text.py`) and
the schemathesis hooks (`tests/helpers/schemathesis_hooks.py`).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

NUL = "\x00"
# The characters each hostile string carries at least one of.
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
CONTROLS = st.one_of(
    st.characters(min_codepoint=0x01, max_codepoint=0x1F),
    st.just("\x7f"),
    st.characters(min_codepoint=0x80, max_codepoint=0x9F),
)


def hostile_character(*, surrogates: bool = True) -> st.SearchStrategy[str]:
    options = [st.just(NUL), CONTROLS, *([SURROGATES] if surrogates else [])]
    return st.one_of(*options)


def hostile_text(*, surrogates: bool = True) -> st.SearchStrategy[str]:
    """Printable text around at least one NUL, control character or (optionally) unpaired surrogate.

    Surrogates are left out where the text travels as UTF-8 (paths, queries, forms): it cannot
    encode them, so no client can send one there.
    """
    plain = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=8)
    return st.tuples(
        plain, st.lists(hostile_character(surrogates=surrogates), min_size=1, max_size=3), plain
    ).map(lambda parts: parts[0] + "".join(parts[1]) + parts[2])


def unstorable(text: str) -> bool:
    """What the backbone must refuse: a NUL, or a surrogate without its pair."""
    return NUL in text or any(0xD800 <= ord(character) <= 0xDFFF for character in text)


def with_hostile_strings(value: Any, *, surrogates: bool = True, keys: bool = True) -> st.SearchStrategy[Any]:
    """`value` as it is, or (at even odds) with strings in it replaced by hostile text.

    Half the values stay as generated, so a generator's valid requests still reach deep into the
    API; a changed one has each string (and, with `keys`, each property name) changed at even odds.
    """
    return st.one_of(st.just(value), _changed(value, surrogates, keys))


def _changed(value: Any, surrogates: bool, keys: bool) -> st.SearchStrategy[Any]:
    def text(original: str) -> st.SearchStrategy[str]:
        return st.one_of(st.just(original), hostile_text(surrogates=surrogates))

    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        items = [
            st.tuples(text(key) if keys else st.just(key), _changed(item, surrogates, keys))
            for key, item in value.items()
        ]
        return st.tuples(*items).map(dict)
    if isinstance(value, list):
        return st.tuples(*(_changed(item, surrogates, keys) for item in value)).map(list)
    return st.just(value)
