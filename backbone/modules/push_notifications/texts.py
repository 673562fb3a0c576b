"""The texts devices show for the backbone's own notifications, per language (devices in other
languages get the English one). Announcements and the notifications identities send each other
bring their own texts."""

from __future__ import annotations

from backbone.platform.push import NotificationText as Text

BUILT_IN_TEXTS: dict[str, dict[str, Text]] = {
    "ExternalEventCreated": {
        "en": Text("Something new", "There is something new for you in the app."),
        "de": Text("Etwas Neues", "In der App wartet etwas Neues auf Sie."),
    },
    "DatawalletModificationsCreated": {
        "en": Text("Data updated", "One of your other devices changed your data."),
        "de": Text("Daten aktualisiert", "Eines Ihrer anderen Geräte hat Ihre Daten geändert."),
    },
    "BackupDeviceUsed": {
        "en": Text("Backup device in use", "Your backup device was used to sign in."),
        "de": Text(
            "Wiederherstellungsgerät verwendet", "Ihr Wiederherstellungsgerät wurde zur Anmeldung verwendet."
        ),
    },
    "TokenLocked": {
        "en": Text("Token locked", "One of your tokens was locked after too many wrong passwords."),
        "de": Text("Token gesperrt", "Einer Ihrer Token wurde nach zu vielen falschen Passwörtern gesperrt."),
    },
    "DeletionProcessStarted": {
        "en": Text("Identity deletion started", "The deletion of one of your identities has begun."),
        "de": Text("Löschung begonnen", "Die Löschung einer Ihrer Identitäten hat begonnen."),
    },
    "DeletionProcessCancelledByOwner": {
        "en": Text("Identity deletion cancelled", "You cancelled the deletion of one of your identities."),
        "de": Text("Löschung abgebrochen", "Sie haben die Löschung einer Ihrer Identitäten abgebrochen."),
    },
    "DeletionProcessGracePeriodReminder": {
        "en": Text(
            "Your identity will soon be deleted", "Until then you can still cancel the deletion in the app."
        ),
        "de": Text(
            "Ihre Identität wird bald gelöscht",
            "Bis dahin können Sie die Löschung in der App noch abbrechen.",
        ),
    },
    "DeletionStarts": {
        "en": Text(
            "Your identity is being deleted", "The grace period is over: your identity's data is deleted now."
        ),
        "de": Text(
            "Ihre Identität wird gelöscht",
            "Die Frist ist abgelaufen: Die Daten Ihrer Identität werden jetzt gelöscht.",
        ),
    },
    "Test": {
        "en": Text("Test", "A test notification from the backbone."),
        "de": Text("Test", "Eine Testbenachrichtigung des Backbones."),
    },
}
