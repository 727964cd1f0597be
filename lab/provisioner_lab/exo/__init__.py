"""The lab's Exchange Online fake: the REST endpoint the ExchangeOnlineManagement V3 module talks to, and a token
issuer, over the same in-memory organisation (and the same cmdlets) as the PSRP lab.

- :mod:`.pki`: a throwaway CA and TLS certificate for 127.0.0.1 (made at start), and app certificates;
- :mod:`.issuer`: OIDC discovery and the token endpoint (client assertion JWT checked against the app's
  registered certificate; access tokens with ``tid`` and ``roles``);
- :mod:`.rest`: ``InvokeCommand``, ``$batch``, paging, 429 with Retry-After and 503 (fault injection), 404/400 error
  bodies, warnings; request counters;
- :mod:`.run`: :func:`running_exo_lab` (tests, benchmarks) and :func:`serve_exo` (``provisioner lab --exo``).

Which request and response shapes are confirmed from public sources and which are guesses: ``SHAPES.md``.
"""
