"""What a user can fix about tracking, as one line each (shown without a traceback)."""

from __future__ import annotations


class TrackingError(Exception):
    """Base of the tracking errors a command shows as one line."""


class TrackingUnreachable(TrackingError):
    """The tracking store (a server, a database) did not answer."""


class UnknownVersion(TrackingError):
    """A model name, version or alias the registry does not have."""


class UnrecordedFolder(TrackingError):
    """A folder no recorded run produced."""


class PortInUse(TrackingError):
    """The port asked for MLflow's UI is taken."""


class ServerExited(TrackingError):
    """MLflow's server, started for its UI, stopped by itself."""
