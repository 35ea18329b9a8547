"""The one exception type for mistakes a user can fix (bad corpus, bad path, bad option).

The CLI prints its message without a traceback and exits with status 2, so every
message must say what went wrong, where (file, line, argument) and what to do.
"""


class NmtError(Exception):
    """A user-facing error: the message is the whole explanation."""
