"""One module per verb: grant/revoke (jobs), reapply, plan files and their exact apply, undo, check, the
MAPI-profile list; the run protocol and its lock."""
