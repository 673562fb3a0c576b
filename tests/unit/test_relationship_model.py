"""The relationship state machine on its own: which step is allowed in which status, and by whom."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from backbone.modules.relationships import model
from backbone.modules.relationships.model import Actor, Relationship, RelationshipStatus, Transition
from backbone.platform.errors import DomainError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FROM, TO = "did:e:localhost:dids:requester", "did:e:localhost:dids:templateowner"
Step = Callable[[Relationship, Actor, str], Transition]
STEPS: dict[str, Step] = {
    "accept": lambda r, a, e: model.accept(r, a, e, None),
    "reject": lambda r, a, e: model.reject(r, a, e, None),
    "revoke": lambda r, a, e: model.revoke(r, a, e, None),
    "terminate": model.terminate,
    "request_reactivation": model.request_reactivation,
    "decompose": model.decompose,
}
# (status, step, actor) -> resulting status, for every step the state machine allows.
ALLOWED = {
    (RelationshipStatus.Pending, "accept", TO): RelationshipStatus.Active,
    (RelationshipStatus.Pending, "reject", TO): RelationshipStatus.Rejected,
    (RelationshipStatus.Pending, "revoke", FROM): RelationshipStatus.Revoked,
    (RelationshipStatus.Active, "terminate", FROM): RelationshipStatus.Terminated,
    (RelationshipStatus.Active, "terminate", TO): RelationshipStatus.Terminated,
    (RelationshipStatus.Terminated, "request_reactivation", FROM): RelationshipStatus.Terminated,
    (RelationshipStatus.Terminated, "request_reactivation", TO): RelationshipStatus.Terminated,
    **{
        (status, "decompose", actor): RelationshipStatus.DeletionProposed
        for status in model.DECOMPOSABLE_STATUSES
        for actor in (FROM, TO)
    },
}


def relationship(status: RelationshipStatus) -> Relationship:
    return Relationship("REL1", "RLT1", FROM, TO, NOW, status, False, False, None, None, ())


@pytest.mark.parametrize("status", list(RelationshipStatus)[:6])
@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("actor", [FROM, TO])
def test_each_step_is_allowed_only_where_the_state_machine_says(
    status: RelationshipStatus, step: str, actor: str
) -> None:
    expected = ALLOWED.get((status, step, actor))
    run = STEPS[step]
    if expected is None:
        with pytest.raises(DomainError) as raised:
            run(relationship(status), Actor(actor, "DVC1", NOW), "RAL1")
        assert raised.value.code.startswith("error.platform.validation.relationship")
        return
    changed = run(relationship(status), Actor(actor, "DVC1", NOW), "RAL1")
    assert changed.relationship.status is expected
    assert changed.entry.old_status is status
    assert changed.relationship.audit_log == (changed.entry,)


def test_the_second_decomposition_makes_the_relationship_ready_for_deletion() -> None:
    first = model.decompose(relationship(RelationshipStatus.Terminated), Actor(FROM, None, NOW), "RAL1")
    assert first.relationship.from_has_decomposed
    second = model.decompose(first.relationship, Actor(TO, None, NOW), "RAL2")
    assert second.relationship.status is RelationshipStatus.ReadyForDeletion
    with pytest.raises(DomainError) as raised:
        model.decompose(second.relationship, Actor(TO, None, NOW), "RAL3")
    assert raised.value.code.endswith("relationshipAlreadyDecomposed")
