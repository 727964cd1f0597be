"""One backoff rule for every retry (PowerShell remoting batches and Exchange Online calls): exponential from a
base, capped, with full jitter (half to all of the step), bounded in retries and in total waiting."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from provisioner.inputs.config import RunSettings


@dataclass(frozen=True)
class Backoff:
    retries: int  # tries after the first
    max_wait: float  # seconds of waiting in all
    base: float = 0.5  # the first step; doubles per retry
    cap: float = 60.0  # the longest step

    def delay(self, attempt: int, rng: random.Random, hinted: float | None = None) -> float:
        """The pause before retry ``attempt`` (0 first): the server's hint (Retry-After) as is, else the rule."""
        if hinted is not None:
            return hinted
        return min(self.cap, self.base * 2.0**attempt) * rng.uniform(0.5, 1.0)

    def allows(self, attempt: int, waited: float, delay: float) -> bool:
        """Whether retry ``attempt`` may wait ``delay`` more after ``waited`` seconds already: a hint longer than the
        budget ends the retries."""
        return attempt < self.retries and waited + delay <= self.max_wait

    @classmethod
    def of(cls, settings: RunSettings) -> Backoff:
        """A run's batch retries (``[reapply] retry_*``)."""
        return cls(settings.retry_attempts, settings.retry_max_seconds, settings.retry_base_seconds)


@dataclass
class Retry:
    """The engine's retries of one batch: :meth:`delays` gives each pause in turn."""

    backoff: Backoff
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delays(self) -> Iterator[float]:
        spent, attempt = 0.0, 0
        while True:
            delay = self.backoff.delay(attempt, self.rng)
            if not self.backoff.allows(attempt, spent, delay):
                return
            attempt, spent = attempt + 1, spent + delay
            yield delay
