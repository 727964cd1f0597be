"""What a run says: the one summary model, reports (JSON, CSV, table), HTML, the terminal, metrics and the
run log."""
