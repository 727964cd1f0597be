"""The optional fast wire path: off unless asked, only on verified pypsrp versions, and the same outcomes."""

from __future__ import annotations

import json
from pathlib import Path

from provisioner_lab.run import running_lab

from provisioner.executors import wire
from tests.test_profiles_e2e import ADMIN, SERVICE, TARGETS, cli, config, holders


def test_only_verified_pypsrp_versions_get_the_fast_path() -> None:
    assert wire.unavailable("0.9.1") is None
    reason = wire.unavailable("0.8.4")
    assert reason is not None and "0.8.4" in reason and "0.9.1" in reason


def test_fast_wire_gives_the_same_outcomes_as_pypsrp(tmp_path: Path) -> None:
    reports = {}
    for flag in ("--no-fast-wire", "--fast-wire"):
        with running_lab(mailboxes=30) as lab:
            conf = config(tmp_path, TARGETS)
            for run in ("grant", "noop"):
                out = tmp_path / f"{flag}-{run}.json"
                result = cli(lab, "grant", "--config", str(conf), "--report", str(out), flag)
                assert result.returncode == 1, result.stderr  # the one missing mailbox
                items = json.loads(out.read_text())["items"]
                reports[(flag, run)] = [(i["mailbox"], i["trustee"], i["result"], (i.get("error") or {}).get("reason"))
                                        for i in items]
            existing = TARGETS[:-1]
            assert holders(lab, existing, ADMIN) == holders(lab, existing, SERVICE) == set(existing)
    for run in ("grant", "noop"):
        assert reports[("--fast-wire", run)] == reports[("--no-fast-wire", run)]
