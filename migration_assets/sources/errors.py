"""The one exception a parser raises: the whole file cannot be migrated, and why."""


class FileRejected(ValueError):
    """Raised by a parser when nothing in a file can be migrated; the message is the reason."""
