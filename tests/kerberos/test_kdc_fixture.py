"""The throwaway KDC itself: fast, self-contained in its directory, and always stopped."""

from __future__ import annotations

import glob
import subprocess
from pathlib import Path

import pytest

from tests.kerberos.conftest import skip_or_fail, skip_reason
from tests.kerberos.kdc import KDC, running_kdc, tool


def _stray_kerberos_files() -> set[str]:
    """Where MIT would write by default: ticket caches in /tmp, replay caches in /var/tmp."""
    return set(glob.glob("/tmp/krb5cc*") + glob.glob("/var/tmp/krb5_*") + glob.glob("/var/tmp/*_rcache*"))


def test_kdc_starts_fast_issues_tickets_writes_only_its_directory_and_stops(tmp_path: Path) -> None:
    reason = skip_reason()
    if reason:
        skip_or_fail(reason)
    before = _stray_kerberos_files()
    root = tmp_path / "kdc"
    with running_kdc(root) as kdc:
        process = kdc.process
        assert process is not None and process.poll() is None
        principal = kdc.add_user("probe", "Pr0be-Secret")
        kdc.add_service(kdc.service_principal())
        kdc.kinit(principal, "Pr0be-Secret")
        kvno = subprocess.run(
            [str(tool("kvno")), kdc.service_principal()],
            capture_output=True, text=True, env=kdc.env(), timeout=10,
        )
        assert kvno.returncode == 0, kvno.stderr
    assert process.poll() is not None  # stopped
    assert kdc.timings["setup"] < 10 and kdc.timings["teardown"] < 5
    print(f"KDC setup {kdc.timings['setup'] * 1000:.0f} ms, teardown {kdc.timings['teardown'] * 1000:.1f} ms")
    assert {p.name for p in root.iterdir()} >= {"krb5.conf", "kdc.conf", "principal", "stash", "ccache"}
    assert _stray_kerberos_files() <= before


def test_kdc_is_stopped_when_the_body_fails(tmp_path: Path) -> None:
    reason = skip_reason()
    if reason:
        skip_or_fail(reason)
    seen: list[KDC] = []
    with pytest.raises(RuntimeError, match="test body failed"), running_kdc(tmp_path / "kdc") as kdc:
        seen.append(kdc)
        raise RuntimeError("test body failed")
    assert seen[0].process is None and "teardown" in seen[0].timings
