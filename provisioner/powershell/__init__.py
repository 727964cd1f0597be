"""PowerShell as the tool writes it: literals (the one escaping point), the steps, the cmdlet table and
the review-script renderer with its templates."""
