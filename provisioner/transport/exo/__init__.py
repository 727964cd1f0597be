"""Exchange Online over its REST endpoint: the backend behind ``connection.backend = "exo"``.

Exchange Online switched remote PowerShell (WinRM/RPS) off for every tenant on 2023-10-01. The
ExchangeOnlineManagement V3 module talks to ``POST https://outlook.office365.com/adminapi/beta/<tenant>/InvokeCommand``
instead; this package does the same, below the engine's runner seam, so the same plan gives the same exact outcomes:

- :mod:`.cloud`: the endpoints per cloud (worldwide, GCC High, DoD) and the host overrides;
- :mod:`.auth`: app-only tokens with a certificate through msal (client assertion), the tenant GUID from ``tid``;
- :mod:`.transport`: the REST client: headers, paging, ``$batch``, retries, error mapping by exception type;
- :mod:`.runner`: :class:`~provisioner.transport.exo.runner.ExoRunner`, the
:class:`~provisioner.transport.runner.Runner` over it;
- :mod:`.session`: opening it (exit 4 with one sentence when the token cannot be had);
- :mod:`.check`: ``provisioner check`` for Exchange Online (token, role, cmdlets);
- :mod:`.script`: the reviewed script's preamble (``Connect-ExchangeOnline`` of the V3 module).

The REST endpoint is undocumented; ``lab/provisioner_lab/exo/SHAPES.md`` lists which request and response shapes
are confirmed from public sources and which are guesses.
"""
