"""The one exception type for mistakes a user can fix.

Its message is a single line that names the file or value at fault and the fix; the
command-line layer prints it and exits non-zero instead of showing a traceback.
"""


class EdgeshipError(Exception):
    """A problem with the user's input or machine, explained in one line."""


class ToolchainFailed(EdgeshipError):
    """The target's toolchain container exited non-zero: why (`reason`), its exit code (`status`)
    and where its whole log is."""

    def __init__(self, reason: str, status: int | None, log: object):
        super().__init__(f"{reason}; full log: {log}")
        self.reason, self.status = reason, status
