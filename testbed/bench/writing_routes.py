"""`make bench`'s routes whose every request must differ from the last: wrk scripts written per run.

`POST /api/v2/Relationships` succeeds once per pair of identities until that relationship stops
blocking; `POST /api/v2/Datawallet/Modifications` only with the identity's latest index; `POST
/api/v2/Messages` only while the recipient has not yet received the sender's last
`MAX_UNRECEIVED` messages. So a pool of identities is onboarded once (outside the timed part),
each in an active relationship with the next one (a ring), and before each wrk run:

- messages: the pool's messages are marked received (one UPDATE in the bench's own database),
  and the script sends round robin, each identity to the next one in the ring;
- relationships: the pool's pending relationships are revoked (one UPDATE), and the script hands
  every request another unordered pair of the pool that is not in the ring;
- modifications: the bench asks each identity for its latest index, and the script pushes round
  robin over the identities, each wrk thread over its own, counting each one's index up.

Requests beyond the pairs available, or a push with a stale index, are answered with an error
and counted as such: the figure then says it is not valid.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from backbone.platform.encoding import b64url
from loadtests.client import DATAWALLET_HEADER, ConsumerApiClient
from loadtests.client.session import IdentitySession, modification

# relationships.status: Pending and Revoked as the backbone stores them (the original's integers).
PENDING, REVOKED = 10, 40
# The bench's backbone lets a sender have this many unreceived messages per recipient (the most
# the setting allows): with the pool's 80 senders, 8,000 messages per run.
MAX_UNRECEIVED = 100


@dataclass
class Pool:
    """Identities for the writing routes, each with a template and a datawallet of known latest index."""

    sessions: list[IdentitySession]
    templates: list[str]
    tokens: list[str]


def onboard_pool(client: ConsumerApiClient, size: int) -> Pool:
    sessions = [client.onboard("a-bench-password!") for _ in range(size)]
    templates = [session.create_template()["id"] for session in sessions]
    for number, session in enumerate(sessions):
        # The first push is the one without a local index; the timed ones all carry one.
        session.push_modifications(None, [modification("bench")])
        following = sessions[(number + 1) % size]
        relationship = session.create_relationship(templates[(number + 1) % size])
        following.accept_relationship(relationship["id"])
    return Pool(sessions, templates, [session.access_token for session in sessions])


def messages_script(pool: Pool, database_url: str, threads: int) -> Callable[[], str]:
    """The wrk script of POST /api/v2/Messages; writing it marks the pool's messages received."""
    engine = sa.create_engine(database_url)
    size = len(pool.sessions)
    bodies = [
        json.dumps(
            {
                "recipients": [
                    {
                        "address": following.address,
                        "encryptedKey": b64url(b"key-for-" + following.address.encode()),
                    }
                ],
                "body": b64url(b"message"),
                "attachments": [],
            }
        )
        for following in (pool.sessions[(number + 1) % size] for number in range(size))
    ]

    def write() -> str:
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE message_recipients SET received_at = :now WHERE received_at IS NULL"),
                {"now": datetime.now(UTC)},
            )
        return (
            f"tokens = {_lua_list(pool.tokens)}\n"
            f"bodies = {_lua_list(bodies)}\n" + _thread_numbering() + 'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            "local sent = 0\n"
            "function request()\n"
            f"  local i = ((sent * {threads} + thread_number) % #tokens) + 1\n"
            "  sent = sent + 1\n"
            '  wrk.headers["Authorization"] = "Bearer " .. tokens[i]\n'
            "  return wrk.format(nil, nil, nil, bodies[i])\n"
            "end\n"
        )

    return write


def _lua_list(values: list[str] | list[int]) -> str:
    return "{" + ", ".join(json.dumps(value) for value in values) + "}"


def _thread_numbering() -> str:
    # setup() runs in the main Lua state once per wrk thread; each thread's state gets its number.
    return (
        "local threads_started = 0\n"
        "function setup(thread)\n"
        "  thread:set('thread_number', threads_started)\n"
        "  threads_started = threads_started + 1\n"
        "end\n"
    )


def relationships_script(pool: Pool, database_url: str, threads: int) -> Callable[[], str]:
    """The wrk script of POST /api/v2/Relationships; writing it revokes the pool's pending ones."""
    engine = sa.create_engine(database_url)

    def write() -> str:
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE relationships SET status = :revoked WHERE status = :pending"),
                {"revoked": REVOKED, "pending": PENDING},
            )
        return (
            f"tokens = {_lua_list(pool.tokens)}\n"
            f"templates = {_lua_list(pool.templates)}\n"
            # Every unordered pair but the ring's neighbours (already in an active relationship).
            "pool_pairs = {}\n"
            "for i = 1, #tokens do for j = i + 2, #tokens do\n"
            "  if not (i == 1 and j == #tokens) then pool_pairs[#pool_pairs + 1] = {i, j} end\n"
            "end end\n" + _thread_numbering() + 'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            "local sent = 0\n"
            "function request()\n"
            f"  local k = sent * {threads} + thread_number\n"
            "  sent = sent + 1\n"
            "  local pair = pool_pairs[(k % #pool_pairs) + 1]\n"
            '  wrk.headers["Authorization"] = "Bearer " .. tokens[pair[1]]\n'
            '  local body = \'{"relationshipTemplateId":"\' .. templates[pair[2]] .. '
            '\'","creationContent":"cmVxdWVzdA"}\'\n'
            "  return wrk.format(nil, nil, nil, body)\n"
            "end\n"
        )

    return write


def modifications_script(pool: Pool, threads: int) -> Callable[[], str]:
    """The wrk script of POST /api/v2/Datawallet/Modifications, from each identity's latest index now.

    Each request names its identity in `X-Correlation-ID`, which the backbone echoes: the answer
    tells whose push it was, so the script counts that identity's index up (or, refused, takes
    the latest index the refusal names) and never sends an identity's next push before the last
    one is answered. Thread t pushes for identities t+1, t+1+threads, ... only.
    """

    def write() -> str:
        latest = [_latest_index(session) for session in pool.sessions]
        item = json.dumps(modification("bench"))
        return (
            f"tokens = {_lua_list(pool.tokens)}\n"
            f"next_index = {_lua_list(latest)}\n"
            "busy = {}\n" + _thread_numbering() + 'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            + "".join(f'wrk.headers["{name}"] = "{value}"\n' for name, value in DATAWALLET_HEADER.items())
            + "local turn = 0\n"
            "function request()\n"
            f"  local own = math.floor(#tokens / {threads})\n"
            "  local i\n"
            "  for _ = 1, own do\n"
            f"    i = (turn % own) * {threads} + thread_number + 1\n"
            "    turn = turn + 1\n"
            "    if not busy[i] then break end\n"
            "  end\n"
            "  busy[i] = true\n"
            '  wrk.headers["Authorization"] = "Bearer " .. tokens[i]\n'
            '  wrk.headers["X-Correlation-ID"] = tostring(i)\n'
            "  local body = '{\"localIndex\":' .. next_index[i] .. "
            f"',\"modifications\":[{item}]}}'\n"
            "  return wrk.format(nil, nil, nil, body)\n"
            "end\n"
            "function response(status, headers, body)\n"
            '  local i = tonumber(headers["x-correlation-id"])\n'
            "  if i == nil then return end\n"
            "  busy[i] = false\n"
            "  if status == 201 then\n"
            "    next_index[i] = next_index[i] + 1\n"
            "  else\n"
            '    local latest = string.match(body, "latest datawallet modification %((%d+)%)")\n'
            "    if latest then next_index[i] = tonumber(latest) end\n"
            "  end\n"
            "end\n"
        )

    return write


def _latest_index(session: IdentitySession) -> int:
    """The identity's latest modification index.

    The list holds the newest modification of each object; the pool's all name one object, so
    it is short whatever was pushed.
    """
    return max((int(item["index"]) for item in session.datawallet_modifications()), default=-1)
