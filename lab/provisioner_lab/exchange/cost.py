"""What a pipeline costs the server: Exchange's time per pipeline, cmdlet invocation, record and write.

The lab itself answers in microseconds; a real Exchange endpoint does not, and how its time splits decides which
client strategy is fast (many small requests, few big pipelines, one command fed many records). With a
:class:`CostModel` in ``EngineOptions.cost`` the engine adds the modelled time to every pipeline as wall time
(a sleep in the pipeline's thread after the engine lock is released, so parallel sessions overlap as on a real
server) and accumulates it in ``Counters.cost_seconds``. Off by default (tests); meant to be on in benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CostModel:
    """Server time in milliseconds per unit of work. The defaults are shaped like Exchange (invocation >> record).

    * ``per_pipeline_ms`` (3): each pipeline the client runs (runspace dispatch, PSRP bookkeeping).
    * ``per_invocation_ms`` (4): each command of a statement, however many records it then processes: Exchange
      runs it through its proxy function, the RBAC check, parameter binding and an AD session. Measured: one
      statement inside a 100-statement pipeline cost an independent Exchange emulator ~4 ms.
    * ``per_record_ms`` (0.15): each input record a command processes (each object piped into it, or 1 for a
      command without pipeline input). Calibrated on the expert one-liner ``ids | Get-Mailbox |
      Get-MailboxPermission -User T``, which read 2,000 pairs (about 4,000 pipeline records) in 0.70 s with 6
      requests there: ~0.15 ms a record once the per-request costs are taken out.
    * ``per_write_ms`` (1): extra for each permission write (an AD write of the mailbox security descriptor).
    * ``per_core_invocation_ms`` (0.5) and ``per_core_record_ms`` (0.02): a PowerShell core cmdlet the session keeps
      public (Select-Object, Measure-Object: :mod:`provisioner_lab.exchange.core`) per invocation and per record it
      processes. They are PowerShell's own cmdlets, not Exchange proxy functions: no RBAC check, no AD session, a
      new property bag per record. Estimates (UNCONFIRMED), an order of magnitude below the Exchange figures.

    These are estimates from measurements of an emulator, not of a live Exchange server (UNCONFIRMED); what
    matters is their shape.
    """

    per_pipeline_ms: float = 3.0
    per_invocation_ms: float = 4.0
    per_record_ms: float = 0.15
    per_write_ms: float = 1.0
    per_core_invocation_ms: float = 0.5
    per_core_record_ms: float = 0.02

    @classmethod
    def exchange_like(cls) -> CostModel:
        """The documented defaults."""
        return cls()

    def seconds(self, *, pipelines: int = 0, invocations: int = 0, records: int = 0, writes: int = 0,
                core_invocations: int = 0, core_records: int = 0) -> float:
        """The modelled server time of that much work, in seconds."""
        milliseconds = (pipelines * self.per_pipeline_ms + invocations * self.per_invocation_ms
                        + records * self.per_record_ms + writes * self.per_write_ms
                        + core_invocations * self.per_core_invocation_ms + core_records * self.per_core_record_ms)
        return milliseconds / 1000.0


__all__ = ["CostModel"]
