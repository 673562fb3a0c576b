"""What the announcements module publishes."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.platform.events import DomainEvent


@dataclass(frozen=True)
class AnnouncementCreatedText:
    language: str
    title: str
    body: str


@dataclass(frozen=True)
class AnnouncementCreated(DomainEvent):
    id: str
    severity: str
    is_silent: bool
    texts: tuple[AnnouncementCreatedText, ...]
    recipients: tuple[str, ...]
