"""The one exception type for mistakes a user can fix.

Its message is a single line that names the file or value at fault and the fix; the
command-line layer prints it and exits non-zero instead of showing a traceback.
"""


class EdgeshipError(Exception):
    """A problem with the user's input or machine, explained in one line."""


class ToolchainFailed(EdgeshipError):
    """The target's toolchain container exited non-zero; `status` is its exit code."""

    def __init__(self, message: str, status: int | None):
        super().__init__(message)
        self.status = status
