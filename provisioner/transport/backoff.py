"""One backoff rule for every retry: exponential with full jitter, bounded in attempts and in total time."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from provisioner.inputs.config import ReapplySettings


@dataclass
class Retry:
    settings: ReapplySettings
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delays(self) -> Iterator[float]:
        """Exponential backoff with full jitter, bounded by attempts and by total time."""
        spent = 0.0
        for attempt in range(1, self.settings.retry_attempts + 1):
            delay = min(60.0, self.settings.retry_base_seconds * 2.0 ** (attempt - 1)) * self.rng.uniform(0.5, 1.0)
            if spent + delay > self.settings.retry_max_seconds:
                return
            spent += delay
            yield delay
