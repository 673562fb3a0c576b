"""What the backbone tells the tools that drive it (its commands, its handlers' queues), and the
order in which the in-process bus runs the handlers of one event."""

from __future__ import annotations

from backbone import cli
from backbone.wiring import Services, handler_queues


def test_the_commands_of_the_backbone_are_listed() -> None:
    names = cli.command_names()
    assert {
        "serve",
        "serve-admin",
        "serve-sse",
        "worker",
        "migrate",
        "job",
        "client",
        "tier",
        "announcement",
        "token",
        "database",
    } == set(names)
    assert names == sorted(names)


def test_the_handler_queues_are_those_of_the_subscribed_handlers(services: Services) -> None:
    queues = handler_queues()
    assert queues == [handler.queue for handler in services.handlers]
    assert len(set(queues)) == len(queues)
    assert {
        "Synchronization.MessageCreated",
        "Messages.IdentityDeleted",
        "Quotas.TierDeleted",
        "Relationships.IdentityToBeDeleted",
        "Devices.ExternalEventCreated",
        "Devices.IdentityDeletionCancelled",
    } <= set(queues)


def test_the_handlers_of_one_event_run_in_the_order_of_the_modules() -> None:
    """A deleted identity's messages are anonymised before its relationships are decomposed, whose
    status changes then reach synchronization, messages and quotas in turn (decisions.md)."""
    queues = handler_queues()

    def handlers_of(event_name: str) -> list[str]:
        return [queue.split(".")[0] for queue in queues if queue.split(".")[1] == event_name]

    assert handlers_of("IdentityDeleted") == ["Messages", "Quotas", "Relationships"]
    assert handlers_of("RelationshipStatusChanged") == ["Synchronization", "Messages", "Quotas"]
    assert handlers_of("IdentityToBeDeleted") == ["Relationships", "Devices"]
    assert handlers_of("TokenLocked") == ["Synchronization", "Devices"]
