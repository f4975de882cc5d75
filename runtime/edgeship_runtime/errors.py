"""Errors a board user can act on: one line naming what is missing and how to get it."""


class RuntimeUnavailable(Exception):
    """A backend's SDK, library or device is missing on this board."""


class ArtifactError(Exception):
    """An artifact directory is incomplete, corrupt or does not fit the request."""
