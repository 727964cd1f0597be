"""provisioner: Exchange Full Access for mailbox-sync accounts, from desired state."""

__version__ = "0.1.0"
