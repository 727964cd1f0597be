"""PowerShell remoting on public APIs: psrpcore for the protocol state, pypsrp's WSMan/WinRS for the transport,
and the tool's own CLIXML reader for pipeline output."""
