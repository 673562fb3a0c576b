"""SQL Server's side of the statements, checked offline: compiled by SQLAlchemy's SQL Server
dialect and parsed by sqlfluff's T-SQL grammar (no SQL Server runs here).

What passes here is SQL that SQL Server's parser would read; it is not proof that SQL Server
would run it the same way (types, locks and plans are only checked where such a server runs).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import visitors
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.ddl import BaseDDLElement

from backbone.platform.dialects import SQL_SERVER, sql_server_dialect

# The statement separator of SQL Server's tools; sqlfluff's T-SQL grammar knows it too.
BATCH_SEPARATOR = "\nGO\n"
# A quoted string (kept as it is) or a positional placeholder (becomes a T-SQL variable).
_PLACEHOLDER_OR_STRING = re.compile(r"'(?:[^']|'')*'|\?")
# Whose frames are the machinery between a caller and the database.
_MACHINERY = ("sqlalchemy", "alembic", "contextlib")
# A dialect asking its own catalog (does a table exist?): each dialect has its own queries.
_INTROSPECTION = ("sqlalchemy.dialects", "sqlalchemy.engine.reflection")


@dataclass(frozen=True)
class Problem:
    """A statement SQL Server would not take, and why."""

    statement: str
    reason: str


def as_t_sql(statement: Any, parameters: Mapping[str, Any] | None = None) -> str:
    """Compile `statement` for SQL Server as pyodbc would send it; placeholders become `@p1`, ...

    `parameters` are those of one execution: they name the columns of an INSERT whose values
    come with the execution, and the lists that an expanding IN spreads into placeholders.
    """
    if isinstance(statement, BaseDDLElement):
        text = statement.compile(dialect=sql_server_dialect()).string
    else:
        compiled = statement.compile(dialect=sql_server_dialect(), column_keys=list(parameters or ()) or None)
        assert isinstance(compiled, SQLCompiler)
        text = compiled.construct_expanded_state(dict(parameters or {})).statement
    numbers = iter(range(1, 100_000))

    def placeholder(match: re.Match[str]) -> str:
        return match.group(0) if match.group(0) != "?" else f"@p{next(numbers)}"

    return _PLACEHOLDER_OR_STRING.sub(placeholder, text)


def split_script(script: str) -> list[str]:
    """The statements of a script whose batches end with GO (what `migrate --sql` writes for
    SQL Server), without comments and transaction control."""
    statements = []
    for batch in re.split(r"^GO$", script, flags=re.M):
        lines = [line for line in batch.splitlines() if line.strip() and not line.startswith("--")]
        text = "\n".join(lines).strip()
        if text and text.rstrip(";").upper() not in ("BEGIN TRANSACTION", "COMMIT"):
            statements.append(text)
    return statements


def split_postgresql_script(script: str) -> list[str]:
    """The statements of a PostgreSQL script (`;` at the end of a line ends one)."""
    statements = []
    for chunk in re.split(r";\s*$", script, flags=re.M):
        lines = [line for line in chunk.splitlines() if line.strip() and not line.startswith("--")]
        text = "\n".join(lines).strip()
        if text and text.upper() not in ("BEGIN", "COMMIT"):
            statements.append(text)
    return statements


def parse_problems(statements: Sequence[str], dialect: str = "tsql", *, processes: int = 2) -> list[Problem]:
    """Parse each statement with sqlfluff; return those its grammar cannot read.

    Statements are parsed as a few long scripts, in parallel: sqlfluff is slow to start, and
    a statement that fails is parsed again on its own to name it.
    """
    chunks = [list(statements[number::processes]) for number in range(processes)]
    with ProcessPoolExecutor(max_workers=processes) as pool:
        results = pool.map(_parse_chunk, chunks, [dialect] * processes)
        return [problem for problems in results for problem in problems]


def _parse_chunk(statements: list[str], dialect: str) -> list[Problem]:
    if not statements:
        return []
    from sqlfluff.core import Linter

    linter = Linter(dialect=dialect)
    script_violations = linter.parse_string(_script(statements, dialect)).violations
    if not script_violations:
        return []
    problems = []
    for statement in statements:
        violations = linter.parse_string(_script([statement], dialect)).violations
        if violations:
            problems.append(Problem(statement, "; ".join(violation.desc() for violation in violations)))
    if not problems:
        problems.append(
            Problem("(the script)", "; ".join(violation.desc() for violation in script_violations))
        )
    return problems


def _script(statements: Sequence[str], dialect: str) -> str:
    if dialect == "tsql":
        return BATCH_SEPARATOR.join(statement.rstrip().rstrip(";") + ";" for statement in statements)
    return "\n".join(statement.rstrip().rstrip(";") + ";" for statement in statements)


class StatementRecorder:
    """Remember every distinct statement the backbone's own code runs on PostgreSQL.

    Listens to every engine's `before_execute`; a statement counts when the code that ran it
    (the first frame outside SQLAlchemy and Alembic) lives in `backbone/`, so the tests' own
    queries, the testbed's seeding and the dialect's catalog queries are left out.
    """

    def __init__(self) -> None:
        self.statements: dict[Any, tuple[Any, dict[str, Any]]] = {}
        self.postgresql_executions = 0

    def install(self) -> None:
        event.listen(Engine, "before_execute", self._record)

    def uninstall(self) -> None:
        event.remove(Engine, "before_execute", self._record)

    def _record(
        self,
        connection: Connection,
        statement: Any,
        multiparams: Sequence[Any],
        params: Mapping[str, Any],
        execution_options: Any,
    ) -> None:
        if connection.dialect.name != "postgresql":
            return
        self.postgresql_executions += 1
        parameters = dict(multiparams[0] if multiparams else params or {})
        key = (_key_of(statement), tuple(sorted(parameters)))
        if key in self.statements or not _run_by_backbone(sys._getframe(1)):
            return
        self.statements[key] = (statement, parameters)

    def t_sql(self) -> tuple[list[str], list[Problem]]:
        """Every recorded statement compiled for SQL Server (distinct texts), and those that
        do not compile at all."""
        texts: dict[str, None] = {}
        problems = []
        for statement, parameters in self.statements.values():
            problems.extend(unlocked_on_sql_server(statement))
            try:
                texts[as_t_sql(statement, parameters)] = None
            except sa.exc.SQLAlchemyError as error:
                problems.append(
                    Problem(
                        str(statement), f"does not compile for SQL Server: {type(error).__name__}: {error}"
                    )
                )
        return list(texts), problems


def unlocked_on_sql_server(statement: Any) -> list[Problem]:
    """The SELECTs in `statement` that lock rows on PostgreSQL (FOR UPDATE) but not on SQL
    Server, where SQLAlchemy renders FOR UPDATE as nothing: `platform.db.locked` adds the hints."""
    if not isinstance(statement, sa.ClauseElement):
        return []
    return [
        Problem(str(element), "locks rows on PostgreSQL (FOR UPDATE) but not on SQL Server (no table hint)")
        for element in visitors.iterate(statement)
        if isinstance(element, sa.Select)
        and element._for_update_arg is not None
        and not any(dialect == SQL_SERVER for _, dialect in element._hints)
    ]


def _key_of(statement: Any) -> Any:
    cache_key = statement._generate_cache_key() if hasattr(statement, "_generate_cache_key") else None
    return cache_key.key if cache_key is not None else (type(statement).__name__, str(statement))


def _run_by_backbone(frame: FrameType | None) -> bool:
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(_INTROSPECTION):
            return False
        if not module.startswith(_MACHINERY):
            return module.startswith("backbone.") or "/backbone/migrations/" in frame.f_code.co_filename
        frame = frame.f_back
    return False


def describe(problems: Sequence[Problem]) -> str:
    """One paragraph per problem, for an assertion message."""
    return "\n\n".join(f"{problem.reason}\n    {problem.statement}" for problem in problems)
