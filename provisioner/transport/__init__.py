"""Carrying steps to a server: the Runner seam, sessions, server facts, bounded waits; psrp/ (the tool's
own PSRP client over pypsrp's WSMan) and exo/ (Exchange Online's REST endpoint)."""
