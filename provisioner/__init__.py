"""provisioner: Exchange Full Access for mailbox-sync accounts, from desired state."""

from provisioner.version import __version__

__all__ = ["__version__"]
