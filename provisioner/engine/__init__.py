"""Applying a plan exactly: reads and writes in the shapes each server takes, target resolution, the
journal and the reconciliation of in-doubt intents."""
