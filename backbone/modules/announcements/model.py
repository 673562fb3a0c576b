"""Announcements: operator messages to every identity or to chosen ones, in several languages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from backbone.platform.crypto import is_valid_address
from backbone.platform.errors import DomainError, InvalidPropertyValue
from backbone.platform.languages import LANGUAGE_CODES

FALLBACK_LANGUAGE = "en"
MAX_IQL_QUERY_LENGTH = 1000
MAX_TITLE_LENGTH = 200
MAX_BODY_LENGTH = 10_000


class AnnouncementSeverity(Enum):
    """Wire names with the integers the original stores."""

    Low = 0
    Medium = 1
    High = 2


@dataclass(frozen=True, slots=True)
class AnnouncementText:
    language: str
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class AnnouncementAction:
    display_name: Mapping[str, str]
    link: str

    def display_name_in(self, language: str) -> str:
        return self.display_name.get(language) or self.display_name.get(FALLBACK_LANGUAGE) or ""


@dataclass(frozen=True, slots=True)
class Announcement:
    id: str
    created_at: datetime
    expires_at: datetime | None
    severity: AnnouncementSeverity
    is_silent: bool
    iql_query: str | None
    texts: tuple[AnnouncementText, ...]
    actions: tuple[AnnouncementAction, ...]
    recipients: tuple[str, ...]

    def text_in(self, language: str) -> AnnouncementText:
        """The text in the language, else the English one (every announcement has one)."""
        by_language = {text.language: text for text in self.texts}
        return by_language.get(language) or by_language[FALLBACK_LANGUAGE]


@dataclass(frozen=True, slots=True)
class NewAnnouncement:
    severity: AnnouncementSeverity
    is_silent: bool
    texts: Sequence[AnnouncementText]
    expires_at: datetime | None
    actions: Sequence[AnnouncementAction]
    recipients: Sequence[str]
    iql_query: str | None


def check_language(language: str) -> None:
    if language not in LANGUAGE_CODES:
        raise DomainError(
            "error.platform.validation.invalidAnnouncementLanguage",
            f"'{language}' is not a valid two-letter ISO 639-1 language code.",
        )


def check_new_announcement(new: NewAnnouncement, now: datetime) -> None:
    """Refuse an announcement that breaks the original's rules (the first broken rule wins)."""
    if not any(text.language == FALLBACK_LANGUAGE for text in new.texts):
        raise InvalidPropertyValue("'texts' must contain a text in English ('en').")
    languages = [text.language for text in new.texts]
    if len(set(languages)) != len(languages):
        raise InvalidPropertyValue("'texts' must not contain a language more than once.")
    for text in new.texts:
        check_language(text.language)
        if not text.title.strip() or not text.body.strip():
            raise InvalidPropertyValue("'texts': every text needs a title and a body.")
    for action in new.actions:
        if FALLBACK_LANGUAGE not in action.display_name:
            raise InvalidPropertyValue("'actions': every display name needs an English ('en') text.")
        for language in action.display_name:
            check_language(language)
        if not action.link.strip():
            raise InvalidPropertyValue("'actions': every action needs a link.")
    if new.expires_at is not None and new.expires_at <= now:
        raise InvalidPropertyValue("'expiresAt' must be in the future.")
    for recipient in new.recipients:
        if not is_valid_address(recipient):
            raise InvalidPropertyValue(f"'recipients': '{recipient}' is not a valid identity address.")
    if len(set(new.recipients)) != len(new.recipients):
        raise InvalidPropertyValue("'recipients' must not contain an address more than once.")
    if new.iql_query is not None:
        if not new.is_silent:
            raise DomainError(
                "error.platform.validation.nonSilentAnnouncementCannotHaveIqlQuery",
                "Only silent announcements can have an IQL query.",
            )
        if not 1 <= len(new.iql_query) <= MAX_IQL_QUERY_LENGTH:
            raise DomainError(
                "error.platform.validation.invalidIqlQueryLengthForAnnouncement",
                f"The IQL query must be between 1 and {MAX_IQL_QUERY_LENGTH} characters long.",
            )
