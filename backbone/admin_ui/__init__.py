"""The Admin UI: server-rendered pages under /ui/ in the Admin API's process (docs/admin-ui.md).

Its pages call the same services as the Admin API's resources, through the same input readers,
so every rule and every error message is the API's own.
"""
