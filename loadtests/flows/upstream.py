"""The original's ten production-like scenarios as flows of the arrival engine.

Each flow is one iteration of one scenario of the original's specification
(`../shared/spec/load-and-scaling.md`, 1.2), acting as personas of the seeded pools
(`loadtests.personas`). Every iteration ends with an outcome (`loadtests.outcomes`): a label for
an expected ending, or a failure with its error code, which also makes the engine count the
iteration as failed.

The flows run inside Locust (the engine's HTTP session is wrapped in a `LocustTransport`, so
every request lands in Locust's statistics under its route template) and from plain Python (a
`HttpClientTransport` as `context.client`). What they share in one process, the cast, the backbone
limits and the outcome counts, is the `ScenarioRuntime` given to `configure`.
"""

from __future__ import annotations

import itertools
import os
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtests.client import (
    NO_NEW_EVENTS as SYNC_NO_NEW_EVENTS,
)
from loadtests.client import (
    ApiError,
    ConsumerApiClient,
    HttpClientTransport,
    IdentitySession,
    LocustTransport,
    Transport,
    modification,
)
from loadtests.flows import Flow, FlowContext, register_flow
from loadtests.outcomes import NO_NEW_EVENTS, OK, OutcomeCounts, UnexpectedOutcome, failure_label, rejected
from loadtests.personas import Cast, CastError, Persona, holding
from scenarios.backbone_limits import BackboneLimits

MAX_UNRECEIVED = "error.platform.validation.message.maxNumberOfUnreceivedMessagesReached"
# What a connector reports for an external event it could not process (scenario 09).
SYNC_ERROR_CODE = "error.connector.externalEventProcessingFailed"
SYNC_ERROR_EVERY = 5
SECRET_VARIABLE = "TESTBED_CLIENT_SECRET"  # noqa: S105 - the name of the variable, not a secret


@dataclass
class ScenarioRuntime:
    """What the flows of one load process share: personas, limits, outcome counts, the API client."""

    cast: Cast
    limits: BackboneLimits = field(default_factory=BackboneLimits)
    outcomes: OutcomeCounts = field(default_factory=OutcomeCounts)
    base_url: str = "http://localhost:8080"
    client_secret: str = field(default_factory=lambda: os.environ.get(SECRET_VARIABLE) or "test", repr=False)
    rng: random.Random = field(default_factory=random.Random)
    # Every result of scenario 09, over all connectors: every SYNC_ERROR_EVERY-th carries an error.
    sync_results: itertools.count[int] = field(default_factory=itertools.count)
    _api: ConsumerApiClient | None = field(default=None, repr=False)
    _api_of: Any = field(default=None, repr=False)

    def api(self, http: Any) -> ConsumerApiClient:
        """The API client over the engine's HTTP session (made once per session)."""
        if self._api is None or self._api_of is not http:
            transport: Transport = (
                http if isinstance(http, HttpClientTransport | LocustTransport) else LocustTransport(http)
            )
            self._api = ConsumerApiClient(
                self.base_url,
                client_id=self.cast.client_id,
                client_secret=self.client_secret,
                did_domain=self.cast.did_domain,
                transport=transport,
            )
            self._api_of = http
        return self._api


_runtime: ScenarioRuntime | None = None
_runtime_factory: Callable[[], ScenarioRuntime] | None = None


def configure(
    runtime: ScenarioRuntime | None = None, *, factory: Callable[[], ScenarioRuntime] | None = None
) -> None:
    """Set the runtime the flows use, or a factory that makes it at the first iteration."""
    global _runtime, _runtime_factory
    _runtime, _runtime_factory = runtime, factory


def current_runtime() -> ScenarioRuntime:
    global _runtime
    if _runtime is None:
        if _runtime_factory is None:
            raise CastError("no personas: run with --credentials PATH (a file written by testbed seed)")
        _runtime = _runtime_factory()
    return _runtime


Body = Callable[[FlowContext, ScenarioRuntime, ConsumerApiClient], str]
LAST_DEVICE = -1


@dataclass(frozen=True)
class Logins:
    """Whom a flow acts as: the persona groups (`a`, `c`, `a3`) and which device of each."""

    groups: tuple[str, ...] = ()
    device: int = 0  # LAST_DEVICE: the persona's last device


_LOGINS: dict[str, Logins] = {}


def scenario_flow(name: str, *, acts_as: tuple[str, ...] = (), device: int = 0) -> Callable[[Body], Flow]:
    """Register a scenario body as a flow that records its outcome and raises on a failure.

    `acts_as` and `device`: the personas the flow logs in as, so the setup phase can log them in
    before the schedule starts (`sessions_to_log_in`).
    """
    _LOGINS[name] = Logins(acts_as, device)

    def register(body: Body) -> Flow:
        def flow(context: FlowContext) -> None:
            runtime = current_runtime()
            try:
                label = body(context, runtime, runtime.api(context.client))
            except Exception as error:
                label = failure_label(error)
                runtime.outcomes.record(context.flow or name, label)
                if isinstance(error, UnexpectedOutcome):
                    raise
                raise UnexpectedOutcome(label, str(error)) from error
            runtime.outcomes.record(context.flow or name, label)

        flow.__doc__ = body.__doc__
        flow.__name__ = body.__name__
        return register_flow(name)(flow)

    return register


def sessions_to_log_in(runtime: ScenarioRuntime, http: Any, flows: Sequence[str]) -> list[IdentitySession]:
    """Every device session of this process's personas that the given flows act as, once each."""
    api = runtime.api(http)
    sessions: dict[int, IdentitySession] = {}
    for flow in flows:
        logins = _LOGINS.get(flow, Logins())
        for persona in runtime.cast.group(*logins.groups) if logins.groups else ():
            device = len(persona.devices) - 1 if logins.device == LAST_DEVICE else logins.device
            session = persona.session(api, device=device)
            sessions[id(session)] = session
    return list(sessions.values())


def payload(context: FlowContext, default_bytes: int) -> bytes:
    """Random bytes of `params.payload_bytes` (default: the scenario's size): encrypted content."""
    return secrets.token_bytes(int(context.params.get("payload_bytes", default_bytes)))


# 01-05: one thing created by one identity


@scenario_flow("upstream.create-challenge", acts_as=("a", "c"))
def create_challenge(context: FlowContext, runtime: ScenarioRuntime, api: ConsumerApiClient) -> str:
    """01: an app or connector identity creates a challenge."""
    runtime.cast.pick("a", "c", rng=runtime.rng).session(api).new_challenge()
    return OK


@scenario_flow("upstream.create-identity")
def create_identity(context: FlowContext, runtime: ScenarioRuntime, api: ConsumerApiClient) -> str:
    """02: a new identity: an anonymous challenge, signed, then the identity with its first device."""
    new = runtime.cast.new_identity()
    api.create_identity(new.key, new.password)
    return OK


@scenario_flow("upstream.create-datawallet-modification", acts_as=("a",))
def create_datawallet_modification(
    context: FlowContext, runtime: ScenarioRuntime, api: ConsumerApiClient
) -> str:
    """03: an app identity pushes one datawallet modification (300 B) after its newest one."""
    persona = runtime.cast.pick("a", rng=runtime.rng)
    session = persona.session(api)
    with holding(persona.sync):
        if not persona.datawallet_current:
            catch_up_datawallet(persona, session)
        item = modification(
            "OBJ" + secrets.token_hex(8), collection="Attributes", payload=payload(context, 300)
        )
        try:
            pushed = session.push_modifications(persona.datawallet_index, [item])
        except Exception:
            # The push may have landed after all (a timeout): catch up before the next one.
            persona.datawallet_current = False
            raise
        persona.datawallet_index = int(pushed["newIndex"])
    return OK


def catch_up_datawallet(persona: Persona, session: IdentitySession) -> None:
    """Fetch the modifications after the persona's known index and move the index to the newest.

    What the app does before it pushes: earlier runs against the same database may have pushed
    after the seeded ones. (The list keeps the newest modification per object, so its highest
    index is the datawallet's newest.) Call while holding `persona.sync`.
    """
    newer = session.datawallet_modifications(persona.datawallet_index)
    if newer:
        persona.datawallet_index = max(int(item["index"]) for item in newer)
    persona.datawallet_current = True


@scenario_flow("upstream.create-token", acts_as=("a", "c"))
def create_token(context: FlowContext, runtime: ScenarioRuntime, api: ConsumerApiClient) -> str:
    """04: an app or connector identity creates a token (1 kB)."""
    persona = runtime.cast.pick("a", "c", rng=runtime.rng)
    token = persona.session(api).create_token(payload(context, 1024))
    persona.remember_token(str(token["id"]))
    return OK


@scenario_flow("upstream.create-relationship-template", acts_as=("c",))
def create_relationship_template(
    context: FlowContext, runtime: ScenarioRuntime, api: ConsumerApiClient
) -> str:
    """05: a connector creates a relationship template (8 kB)."""
    runtime.cast.pick("c", rng=runtime.rng).session(api).create_template(payload(context, 8 * 1024))
    return OK


# 06: the whole relationship life cycle

APP, CONNECTOR = "app", "connector"
# (who acts, what) for the 30 steps. The app requests on the connector's template; after each
# of the 16 changes the peer fetches the relationship, except after the decompositions: the
# connector's decomposition is followed by the app's own, after which neither side sees it.
LIFECYCLE_STEPS: tuple[tuple[str, str], ...] = (
    (APP, "create"),
    (CONNECTOR, "fetch"),
    (CONNECTOR, "reject"),
    (APP, "fetch"),
    (APP, "create"),
    (CONNECTOR, "fetch"),
    (APP, "revoke"),
    (CONNECTOR, "fetch"),
    (APP, "create"),
    (CONNECTOR, "fetch"),
    (CONNECTOR, "accept"),
    (APP, "fetch"),
    (APP, "terminate"),
    (CONNECTOR, "fetch"),
    (CONNECTOR, "request-reactivation"),
    (APP, "fetch"),
    (APP, "reject-reactivation"),
    (CONNECTOR, "fetch"),
    (CONNECTOR, "request-reactivation"),
    (APP, "fetch"),
    (CONNECTOR, "revoke-reactivation"),
    (APP, "fetch"),
    (APP, "request-reactivation"),
    (CONNECTOR, "fetch"),
    (CONNECTOR, "accept-reactivation"),
    (APP, "fetch"),
    (CONNECTOR, "terminate"),
    (APP, "fetch"),
    (CONNECTOR, "decompose"),
    (APP, "decompose"),
)
_STATUS_AFTER = {
    "create": "Pending",
    "reject": "Rejected",
    "revoke": "Revoked",
    "accept": "Active",
    "terminate": "Terminated",
    "request-reactivation": "Terminated",
    "reject-reactivation": "Terminated",
    "revoke-reactivation": "Terminated",
    "accept-reactivation": "Active",
    "decompose": "DeletionProposed",
}


def walk_lifecycle(app: IdentitySession, connector: IdentitySession, template_id: str) -> int:
    """Walk LIFECYCLE_STEPS between two sessions; returns the number of steps taken."""
    sides = {APP: app, CONNECTOR: connector}
    relationship_id = ""
    expected_status = ""
    for number, (side, action) in enumerate(LIFECYCLE_STEPS, start=1):
        session = sides[side]
        if action == "create":
            result = session.create_relationship(template_id, secrets.token_bytes(256))
            relationship_id = str(result["id"])
        elif action == "fetch":
            result = session.get_relationship(relationship_id)
        else:
            result = _CHANGES[action](session, relationship_id)
        if action != "fetch":
            expected_status = _STATUS_AFTER[action]
        if action != "decompose" and result.get("status") != expected_status:
            raise UnexpectedOutcome(
                f"failed:step {number} ({side} {action}) saw status {result.get('status')}",
                f"expected {expected_status}",
            )
    return len(LIFECYCLE_STEPS)


_CHANGES: dict[str, Callable[[IdentitySession, str], dict[str, Any]]] = {
    "reject": lambda s, rid: s.reject_relationship(rid),
    "revoke": lambda s, rid: s.revoke_relationship(rid),
    "accept": lambda s, rid: s.accept_relationship(rid, secrets.token_bytes(256)),
    "terminate": lambda s, rid: s.terminate_relationship(rid),
    "request-reactivation": lambda s, rid: s.request_reactivation(rid),
    "reject-reactivation": lambda s, rid: s.reject_reactivation(rid),
    "revoke-reactivation": lambda s, rid: s.revoke_reactivation(rid),
    "accept-reactivation": lambda s, rid: s.accept_reactivation(rid),
    "decompose": lambda s, rid: s.decompose_relationship(rid),
}


def lifecycle_partners(app: Persona, cast: Cast) -> list[Persona]:
    """The connectors an app can walk the life cycle with: no seeded relationship between them,
    none left open by a broken-off walk, and a template to request on."""
    taken = set(app.peers) | app.stuck_peers
    return [c for c in cast.group("c") if c.templates and c.address not in taken]


@scenario_flow("upstream.relationship-lifecycle", acts_as=("a", "c"))
def relationship_lifecycle(context: FlowContext, runtime: ScenarioRuntime, api: ConsumerApiClient) -> str:
    """06: a connector (i1) and an app without a relationship to it (i2) walk the 30-step life cycle."""
    cast = runtime.cast
    app = cast.lease(
        cast.group("a"),
        lock="lifecycle",
        rng=runtime.rng,
        eligible=lambda candidate: bool(lifecycle_partners(candidate, cast)),
    )
    try:
        connector = runtime.rng.choice(lifecycle_partners(app, cast))
        try:
            walk_lifecycle(app.session(api), connector.session(api), runtime.rng.choice(connector.templates))
        except Exception:
            # Half-way the pair may still hold an open relationship; a new one would be refused.
            app.stuck_peers.add(connector.address)
            raise
    finally:
        app.lifecycle.release()
    return OK


# 07 and 08: messages


def read_as_recipient(
    runtime: ScenarioRuntime, api: ConsumerApiClient, address: str, message_id: str
) -> None:
    """The recipient syncs, reads the messages its events announce, and the one just sent.

    Reading marks a message received, which keeps the sender under the backbone's
    unreceived-message limit. A recipient in another load process's share only reads the message
    (its sync runs belong to that process).
    """
    recipient = runtime.cast.by_address.get(address)
    if recipient is None:
        other = runtime.cast.everyone.get(address)
        if other is None:
            raise CastError(f"the recipient {address} is not in the credentials file")
        other.session(api).get_message(message_id)
        return
    session = recipient.session(api)
    announced: list[str] = []
    with holding(recipient.sync):
        started = session.start_sync_run()
        if started["status"] != SYNC_NO_NEW_EVENTS:
            run_id = str(started["syncRun"]["id"])
            events = session.sync_run_events(run_id)
            announced = [str(e["payload"]["id"]) for e in events if e.get("type") == "MessageReceived"]
            session.finalize_external_event_sync(run_id, [{"externalEventId": e["id"]} for e in events])
    if announced:
        session.list_messages(announced)
    if message_id not in announced:
        session.get_message(message_id)


@scenario_flow("upstream.send-message", acts_as=("a", "c"))
def send_message(context: FlowContext, runtime: ScenarioRuntime, api: ConsumerApiClient) -> str:
    """07: an identity sends a personal message to a peer, who syncs and reads it."""
    sender = runtime.cast.pick("a", "c", rng=runtime.rng, with_relationships=True)
    peer = runtime.rng.choice(sender.peers)
    sent = sender.session(api).send_message([peer], payload(context, 1024))
    read_as_recipient(runtime, api, peer, str(sent["id"]))
    return OK


def recipients_for(sender: Persona, limits: BackboneLimits, rng: random.Random) -> Sequence[str]:
    """n random in 50..1000, n-1 recipients; no more than the sender's peers and the landscape allow."""
    n = rng.randint(50, 1000)
    count = min(n - 1, len(sender.peers), limits.max_message_recipients)
    return rng.sample(sender.peers, count)


@scenario_flow("upstream.send-message-to-many", acts_as=("a", "c"))
def send_message_to_many(context: FlowContext, runtime: ScenarioRuntime, api: ConsumerApiClient) -> str:
    """08: an identity sends one message to as many of its peers as the landscape allows.

    Nobody reads in this scenario, so a recipient may already hold the most unreceived messages
    from this sender the backbone allows: its refusal is the expected business outcome.
    """
    sender = runtime.cast.pick("a", "c", rng=runtime.rng, with_relationships=True)
    recipients = recipients_for(sender, runtime.limits, runtime.rng)
    try:
        sender.session(api).send_message(
            recipients, payload(context, 1024), expected_errors=(MAX_UNRECEIVED,)
        )
    except ApiError as error:
        if error.code == MAX_UNRECEIVED:
            return rejected(MAX_UNRECEIVED)
        raise
    return OK


# 09: the connector's sync loop


@scenario_flow("upstream.connector-sync", acts_as=("c",))
def connector_sync(context: FlowContext, runtime: ScenarioRuntime, api: ConsumerApiClient) -> str:
    """09: a connector gets its new datawallet modifications and runs an external-event sync.

    Connectors take turns by iteration number, so at nc iterations per second each of the nc
    connectors syncs once a second. When a run starts, the connector pushes one datawallet
    modification per event and reports every event, every fifth result with an error code.
    """
    connectors = runtime.cast.group("c")
    if not connectors:
        raise CastError(f"the pool {runtime.cast.pool_config!r} has no connector in this share")
    connector = connectors[context.iteration % len(connectors)]
    session = connector.session(api)
    with holding(connector.sync):
        catch_up_datawallet(connector, session)
        started = session.start_sync_run()
        if started["status"] == SYNC_NO_NEW_EVENTS:
            return NO_NEW_EVENTS
        run_id = str(started["syncRun"]["id"])
        events = session.sync_run_events(run_id)
        results: list[dict[str, Any]] = []
        for event in events:
            result: dict[str, Any] = {"externalEventId": event["id"]}
            if next(runtime.sync_results) % SYNC_ERROR_EVERY == SYNC_ERROR_EVERY - 1:
                result["errorCode"] = SYNC_ERROR_CODE
            results.append(result)
        items = [
            modification(
                "OBJ" + secrets.token_hex(8), collection="Attributes", payload=secrets.token_bytes(300)
            )
            for _ in events
        ]
        try:
            finalized = session.finalize_external_event_sync(run_id, results, items)
        except Exception:
            connector.datawallet_current = False
            raise
        if finalized.get("newDatawalletModificationIndex") is not None:
            connector.datawallet_index = int(finalized["newDatawalletModificationIndex"])
    return OK


# 10: a new device of a heavy app identity


@scenario_flow("upstream.device-onboarding", acts_as=("a3",), device=LAST_DEVICE)
def device_onboarding(context: FlowContext, runtime: ScenarioRuntime, api: ConsumerApiClient) -> str:
    """10: a heavy app identity's device pages through everything the identity has, from index 0."""
    persona = runtime.cast.pick("a3", rng=runtime.rng)
    session = persona.session(api, device=len(persona.devices) - 1)
    session.datawallet_modifications(None)
    session.list_messages()
    if persona.relationships:
        session.list_relationships([r.id for r in persona.relationships])
        session.list_templates(sorted({r.template for r in persona.relationships if r.template}))
    if persona.tokens:
        session.list_tokens(list(persona.tokens))
    return OK
