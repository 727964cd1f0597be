"""What the operator gives: the TOML configuration (its schema is the settings dataclasses), users files,
desired state (lists and selectors), config discovery and the output paths checked before connecting."""
