"""schemathesis hooks (`SCHEMATHESIS_HOOKS`): generated bodies, queries and path fields get hostile text.

Each string schemathesis generates is kept or replaced by text with NUL, control characters and,
in JSON bodies, unpaired surrogates (`tests/helpers/hostile_text.py`), so its pass over both
documents meets that text in every field as well as the values the schemas describe.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import strategies as st

from tests.helpers.hostile_text import with_hostile_strings


def _json_only(context: Any) -> bool:
    """Unpaired surrogates only travel as JSON escapes; UTF-8 (forms, multipart) cannot carry them."""
    operation = context.operation
    return operation is not None and all(body.media_type == "application/json" for body in operation.body)


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    return with_hostile_strings(body, surrogates=_json_only(context))


@schemathesis.hook
def flatmap_query(context: Any, query: Any) -> st.SearchStrategy[Any]:
    return with_hostile_strings(query, surrogates=False)


@schemathesis.hook
def flatmap_path_parameters(context: Any, path_parameters: Any) -> st.SearchStrategy[Any]:
    # Only the values: the names fill the path template.
    return with_hostile_strings(path_parameters, surrogates=False, keys=False)
