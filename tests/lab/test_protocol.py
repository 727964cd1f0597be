"""The lab endpoint driven by the real pypsrp 0.9.1 client over HTTP on 127.0.0.1 (no mocks in between)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from provisioner_lab import clixml, wsman
from provisioner_lab.api import Argument, LabEnum, LabError, LabObject, PipelineResult, Statement
from provisioner_lab.server import FaultOptions, LabServer
from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.serializer import TaggedValue

from .conftest import OTHER_PASSWORD, OTHER_USER, PASSWORD, USER, FakeEngine, connect, open_pool

HOSTILE = [
    "plain",
    "",
    " leading and trailing ",
    "O'Brien",
    'say "hi"',
    "`backtick` and ``double``",
    "$(Remove-Mailbox -Identity x -Confirm:$false)",
    "${env:PATH}; Get-Process | Stop-Process",
    "a;b|c&d<e>f",
    "<xml attr='1'>&amp;</xml>",
    "tab\there\r\nnew\nline\x01\x02\x1b[31m\x7f",
    "_x000A_ literal escape _X0041_ and _x005F_",
    "Zoë Ångström — 日本語 — Ελληνικά",
    "emoji 😀 outside the BMP",
    "‘smart’ “quotes” and \u00a0nbsp",
    "x" * 200_000,
]


def _ps(pool: Any) -> PowerShell:
    return PowerShell(pool)


# --- pool lifecycle -------------------------------------------------------------------------------------------


def test_open_close_pool_and_is_alive(lab: LabServer) -> None:
    before = lab.counters.snapshot()
    pool = open_pool(lab)
    assert lab.open_shells >= 1
    assert pool.is_alive() is True
    pool.close()
    after = lab.counters.snapshot()
    assert after["Create"] - before["Create"] == 1
    assert after["Get"] - before["Get"] == 1
    assert after["Delete"] - before["Delete"] == 1


def test_is_alive_false_after_server_closed_the_pool(lab: LabServer) -> None:
    pool = open_pool(lab)
    assert lab.close_pools() >= 1
    assert pool.is_alive() is False
    pool.close()  # already closed client-side by is_alive(); must not raise


def test_wrong_path_gives_http_404(lab: LabServer) -> None:
    with pytest.raises(WinRMTransportError) as info:
        open_pool(lab, path="wsman")
    assert info.value.code == 404


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_wrong_configuration_name_faults(lab: LabServer, auth: str) -> None:
    with pytest.raises(WSManFaultError) as info:
        open_pool(lab, auth=auth, configuration_name="Microsoft.PowerShell")
    assert info.value.code == 2150858770
    assert "Microsoft.PowerShell" in str(info.value.reason)


# --- commands in -----------------------------------------------------------------------------------------------


@pytest.fixture(params=["fast", "psrpcore"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the fast CREATE_PIPELINE reader and again with psrpcore's generic deserialiser."""
    if request.param == "psrpcore":

        def unsupported(data: bytes, **options: Any) -> Any:
            raise clixml.Unsupported("forced")

        monkeypatch.setattr(clixml, "parse_create_pipeline", unsupported)
    return str(request.param)


@pytest.fixture(params=["fast", "psrpcore"])
def writer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the fast output writer and again with psrpcore's serialiser."""
    if request.param == "psrpcore":

        def unsupported(w: clixml.Writer, item: Any) -> bytes:
            raise clixml.Unsupported("forced")

        monkeypatch.setattr(clixml, "render_output", unsupported)
    return str(request.param)


def test_parameters_arrive_exactly(lab: LabServer, engine: FakeEngine, parser: str) -> None:
    with open_pool(lab) as pool:
        for value in HOSTILE:
            ps = _ps(pool)
            ps.add_cmdlet("Get-Mailbox").add_parameter("Identity", value).add_argument(value)
            ps.invoke()
            args = engine.last.statements[0].commands[0].arguments
            assert args == (Argument("Identity", value), Argument(None, value)), repr(value[:60])


def test_parameter_types_and_switches(lab: LabServer, engine: FakeEngine, parser: str) -> None:
    with open_pool(lab) as pool:
        ps = _ps(pool)
        ps.add_cmdlet("Add-MailboxPermission")
        ps.add_parameter("Identity", "shared@contoso.com")
        ps.add_parameter("AccessRights", ["FullAccess", "ReadPermission"])
        ps.add_parameter("AutoMapping", False)
        ps.add_parameter("Confirm", False)
        ps.add_parameter("ResultSize", 5000)
        ps.add_parameter("Deny")  # no value: a present switch
        ps.add_parameter("Nothing", [])
        ps.add_parameter("Nested", ["a", ["b", 1], {"k": "v"}])
        ps.add_parameter("Add", {"Name": "x", "Count": 2, "Flag": True, "None": None})
        ps.invoke()
    command = engine.last.statements[0].commands[0]
    assert command.name == "Add-MailboxPermission"
    assert command.is_script is False
    assert command.arguments == (
        Argument("Identity", "shared@contoso.com"),
        Argument("AccessRights", ["FullAccess", "ReadPermission"]),
        Argument("AutoMapping", False),
        Argument("Confirm", False),
        Argument("ResultSize", 5000),
        Argument("Deny", None),
        Argument("Nothing", []),
        Argument("Nested", ["a", ["b", 1], {"k": "v"}]),
        Argument("Add", {"Name": "x", "Count": 2, "Flag": True, "None": None}),
    )
    values = [a.value for a in command.arguments]
    assert type(values[0]) is str and type(values[2]) is bool and type(values[4]) is int
    assert type(values[1]) is list and all(type(v) is str for v in values[1])
    assert engine.last.user == USER


def test_statements_pipes_and_scripts(lab: LabServer, engine: FakeEngine, parser: str) -> None:
    with open_pool(lab) as pool:
        ps = _ps(pool)
        ps.add_cmdlet("Get-Mailbox").add_parameter("Identity", "a")
        ps.add_statement()
        ps.add_cmdlet("Get-MailboxPermission").add_parameter("Identity", "b").add_cmdlet("Select-Object")
        ps.add_parameter("First", 1)
        ps.add_statement()
        ps.add_script("Get-Date; 'x' + $y")
        ps.invoke()
    statements = engine.last.statements
    assert [[c.name for c in s.commands] for s in statements] == [
        ["Get-Mailbox"],
        ["Get-MailboxPermission", "Select-Object"],
        ["Get-Date; 'x' + $y"],
    ]
    assert statements[2].commands[0].is_script is True
    assert statements[1].commands[1].arguments == (Argument("First", 1),)


def test_many_statements_in_one_pipeline(lab: LabServer, engine: FakeEngine, parser: str) -> None:
    with open_pool(lab) as pool:
        ps = _ps(pool)
        for i in range(200):
            ps.add_cmdlet("Add-MailboxPermission").add_parameter("Identity", f"mbx{i}").add_statement()
        ps.invoke()
    statements = engine.last.statements
    assert len(statements) == 200
    assert statements[199].commands[0].arguments[0] == Argument("Identity", "mbx199")


def test_pipeline_input(lab: LabServer, engine: FakeEngine) -> None:
    with open_pool(lab) as pool:
        ps = _ps(pool)
        ps.add_cmdlet("Set-Mailbox").add_parameter("Confirm", False)
        ps.invoke(input=["a", "b c", 3, True, None, "Zoë"])
    assert engine.last.pipeline_input == ["a", "b c", 3, True, None, "Zoë"]


# --- results out -----------------------------------------------------------------------------------------------

RIGHTS = LabEnum(
    ("Microsoft.Exchange.Management.RecipientTasks.MailboxRights",),
    1 | 0x20000,
    "FullAccess, ReadPermission",
)
ACE_TYPES = (
    "Microsoft.Exchange.Management.RecipientTasks.MailboxAcePresentationObject",
    "Microsoft.Exchange.Data.Directory.Management.AcePresentationObject",
    "System.Object",
)


def _ace(user: str) -> LabObject:
    return LabObject(
        ACE_TYPES,
        {
            "AccessRights": [RIGHTS],
            "Deny": False,
            "InheritanceType": LabEnum(("System.DirectoryServices.ActiveDirectorySecurityInheritance",), 1, "All"),
            "User": user,
            "Identity": "shared",
            "IsInherited": False,
            "IsValid": True,
            "Count": 7,
            "Nothing": None,
            "Nested": LabObject(("Lab.Nested",), {"Inner": ["x", 2]}, "nested"),
        },
        f"shared\\{user}",
    )


def test_output_objects(lab: LabServer, engine: FakeEngine, writer: str) -> None:
    engine.handlers["Get-MailboxPermission"] = lambda s, i: PipelineResult(output=[_ace("CONTOSO\\bob"), "text", 5])
    with open_pool(lab) as pool:
        ps = _ps(pool)
        ps.add_cmdlet("Get-MailboxPermission").add_parameter("Identity", "shared")
        out = ps.invoke()
    assert ps.had_errors is False
    ace, text, number = out
    assert (text, number) == ("text", 5)
    assert ace.types == list(ACE_TYPES)
    assert str(ace) == "shared\\CONTOSO\\bob"
    props = ace.adapted_properties
    assert props["User"] == "CONTOSO\\bob"
    assert props["Deny"] is False and props["IsInherited"] is False and props["Count"] == 7
    assert props["Nothing"] is None
    rights = props["AccessRights"]
    assert isinstance(rights, list) and len(rights) == 1
    assert str(rights[0]) == "FullAccess, ReadPermission"
    assert rights[0].types[0] == "Microsoft.Exchange.Management.RecipientTasks.MailboxRights"
    assert "System.Enum" in rights[0].types
    assert rights[0].property_sets == [1 | 0x20000]
    assert str(props["InheritanceType"]) == "All"
    nested = props["Nested"]
    assert nested.types[0] == "Lab.Nested" and nested.adapted_properties["Inner"] == ["x", 2]


def test_large_output_spans_several_receives(
    lab: LabServer, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    notes = "n" * 1500  # bulky objects: many Receive responses without making pypsrp's slow parser the bottleneck

    def big(statements: list[Statement], pipeline_input: list[Any]) -> PipelineResult:
        return PipelineResult(output=[LabObject(("Lab.Row",), {"N": n, "Notes": notes}, str(n)) for n in range(1500)])

    engine.handlers["Get-Recipient"] = big
    sizes: list[tuple[int, int]] = []
    real_receive_response = wsman.receive_response

    def recording(req: wsman.Request, command_id: str | None, b64_data: str, done: bool) -> bytes:
        body = real_receive_response(req, command_id, b64_data, done)
        sizes.append((len(body), req.max_envelope_size))
        return body

    monkeypatch.setattr(wsman, "receive_response", recording)
    with open_pool(lab) as pool:
        before = lab.counters["Receive"]
        ps = _ps(pool)
        ps.add_cmdlet("Get-Recipient")
        out = ps.invoke()
        receives = lab.counters["Receive"] - before
    assert [o.adapted_properties["N"] for o in out] == list(range(1500))
    assert out[-1].adapted_properties["Notes"] == notes
    assert receives >= 4
    assert all(size <= limit for size, limit in sizes)
    assert max(limit for _, limit in sizes) == 512000  # pypsrp raised it after SESSION_CAPABILITY 2.3
    assert max(size for size, _ in sizes) > 153600  # and the server used the larger envelopes


NOT_FOUND = LabError(
    message="The operation couldn't be performed because object 'nobody' couldn't be found on 'DC1.contoso.com'.",
    exception_type="Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
    category="ObjectNotFound",
    reason="ManagementObjectNotFoundException",
    fq_error_id="[Server=EX1,RequestId=1,TimeStamp=1/1/2026] [FailureCategory=Cmdlet-ManagementObjectNotFoundException]"
    " 9F2B1C,Microsoft.Exchange.Management.RecipientTasks.AddMailboxPermission",
    target_object="nobody",
    command="Add-MailboxPermission",
    bound_parameters={"Identity": "nobody", "User": "svc", "AccessRights": ["FullAccess"]},
)


def test_non_terminating_errors_and_warnings(lab: LabServer, engine: FakeEngine) -> None:
    engine.handlers["Add-MailboxPermission"] = lambda s, i: PipelineResult(
        output=["ok"],
        errors=[NOT_FOUND, LabError("bad", "System.ArgumentException", "InvalidArgument", "ArgumentException", "X")],
        warnings=["The appropriate access control entry is already present on the object."],
        verbose=["Adding permission"],
    )
    with open_pool(lab) as pool:
        ps = _ps(pool)
        ps.add_cmdlet("Add-MailboxPermission").add_parameter("Identity", "nobody")
        out = ps.invoke()
    assert out == ["ok"]
    assert ps.had_errors is False  # pypsrp 0.9.1 only sets had_errors for a failed pipeline
    first, second = ps.streams.error
    assert first.reason == "ManagementObjectNotFoundException"
    assert first.fq_error == NOT_FOUND.fq_error_id
    assert first.category == 13  # ErrorCategory.ObjectNotFound
    assert first.target_object == "nobody"
    assert first.message == (
        "ObjectNotFound: (nobody:String) [Add-MailboxPermission], ManagementObjectNotFoundException"
    )
    assert str(first) == NOT_FOUND.message
    assert first.exception.adapted_properties["Message"] == NOT_FOUND.message
    assert first.exception.types[0] == NOT_FOUND.exception_type
    assert "System.Exception" in first.exception.types
    assert first.invocation_name == "Add-MailboxPermission"
    assert first.command_name == "Add-MailboxPermission"
    assert first.invocation_bound_parameters == {"Identity": "nobody", "User": "svc", "AccessRights": ["FullAccess"]}
    assert second.reason == "ArgumentException" and second.category == 5 and second.target_object is None
    assert second.invocation_name is None
    assert [w.message for w in ps.streams.warning] == [
        "The appropriate access control entry is already present on the object."
    ]
    assert [v.message for v in ps.streams.verbose] == ["Adding permission"]


def test_terminating_failure(lab: LabServer, engine: FakeEngine) -> None:
    engine.handlers["Remove-MailboxPermission"] = lambda s, i: PipelineResult(output=["partial"], failure=NOT_FOUND)
    with open_pool(lab) as pool:
        ps = _ps(pool)
        ps.add_cmdlet("Remove-MailboxPermission").add_parameter("Identity", "nobody")
        out = ps.invoke()
        assert out == ["partial"]
        assert ps.had_errors is True
        assert ps.state == 5  # PSInvocationState.FAILED
        assert ps.streams.error[-1].reason == "ManagementObjectNotFoundException"
        assert ps.streams.error[-1].fq_error == NOT_FOUND.fq_error_id
        # the pool stays usable after a failed pipeline
        ps2 = _ps(pool)
        ps2.add_cmdlet("Get-Nothing")
        assert ps2.invoke() == []


def test_engine_exception_fails_the_pipeline(lab: LabServer, engine: FakeEngine) -> None:
    def boom(statements: list[Statement], pipeline_input: list[Any]) -> PipelineResult:
        raise RuntimeError("engine bug")

    engine.handlers["Boom"] = boom
    with open_pool(lab) as pool:
        ps = _ps(pool)
        ps.add_cmdlet("Boom")
        ps.invoke()
    assert ps.had_errors is True
    assert "engine bug" in str(ps.streams.error[-1])


def test_terminate_signal_after_close(lab: LabServer) -> None:
    with open_pool(lab) as pool:
        ps = _ps(pool)
        ps.add_cmdlet("Get-Nothing")
        ps.invoke()
        before = lab.counters["Signal"]
        ps.close()
        assert lab.counters["Signal"] == before + 1
        ps.add_cmdlet("Get-Nothing")
        ps.invoke()


def test_concurrent_pools(lab: LabServer, engine: FakeEngine) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with open_pool(lab) as pool:
                for i in range(5):
                    ps = _ps(pool)
                    ps.add_cmdlet("Get-Mailbox").add_parameter("Identity", f"w{n}-{i}")
                    ps.invoke()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    seen = {
        c.statements[0].commands[0].arguments[0].value
        for c in engine.calls
        if c.statements and c.statements[0].commands[0].name == "Get-Mailbox" and c.statements[0].commands[0].arguments
    }
    assert {f"w{n}-{i}" for n in range(4) for i in range(5)} <= seen


# --- authentication and encryption -------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["ntlm", "negotiate"])
def test_ntlm_with_message_encryption(lab: LabServer, engine: FakeEngine, auth: str) -> None:
    marker = f"cleartext-marker-{auth}-Zoë"
    lab.wire.clear()
    before = lab.counters.snapshot()
    with open_pool(lab, auth=auth) as pool:
        ps = _ps(pool)
        ps.add_cmdlet("Get-Mailbox").add_parameter("Identity", marker)
        ps.invoke()
    assert engine.last.statements[0].commands[0].arguments[0].value == marker
    assert engine.last.user == USER
    after = lab.counters.snapshot()
    soap_requests = after["total"] - before["total"]
    assert after["encrypted"] - before["encrypted"] == soap_requests > 0
    wire = b"".join(lab.wire)
    assert b"multipart/encrypted" not in wire  # bodies only: the MIME header lines are inside them
    assert b"Encrypted Boundary" in wire
    for needle in (marker.encode(), b"Get-Mailbox", b"Envelope", b"creationXml"):
        assert needle not in wire


def test_ntlm_domain_user(lab: LabServer, engine: FakeEngine) -> None:
    with open_pool(lab, auth="ntlm", username=OTHER_USER, password=OTHER_PASSWORD) as pool:
        ps = _ps(pool)
        ps.add_cmdlet("Get-Nothing")
        ps.invoke()
    assert engine.last.user == OTHER_USER


@pytest.mark.parametrize("auth", ["basic", "ntlm", "negotiate"])
def test_wrong_password_is_rejected(lab: LabServer, auth: str) -> None:
    before = lab.counters["http_401"]
    with pytest.raises(AuthenticationError):
        open_pool(lab, auth=auth, password="wrong")
    assert lab.counters["http_401"] > before


def test_unknown_user_is_rejected(lab: LabServer) -> None:
    with pytest.raises(AuthenticationError):
        open_pool(lab, auth="ntlm", username="nobody", password=PASSWORD)


def test_basic_can_be_disabled(engine: FakeEngine) -> None:
    with LabServer(engine, users={USER: PASSWORD}, auth=("ntlm",)) as server:
        with pytest.raises((AuthenticationError, ValueError)):
            open_pool(server, auth="basic")
        with open_pool(server, auth="ntlm") as pool:
            assert pool.is_alive()


# --- fault injection and counters ---------------------------------------------------------------------------------


def test_counters_and_reset(lab: LabServer) -> None:
    with open_pool(lab) as pool:
        lab.counters.reset()
        ps = _ps(pool)
        ps.add_cmdlet("Get-Nothing")
        ps.invoke(input=["x"])
        snap = lab.counters.snapshot()
    assert snap["Create"] == 0 and snap["Command"] == 1 and snap["Send"] >= 1 and snap["Receive"] >= 1
    assert snap["total"] == sum(snap[a] for a in ("Create", "Command", "Send", "Receive", "Signal", "Delete", "Get"))
    assert lab.counters["Delete"] == 1
    lab.counters.reset()
    assert lab.counters["total"] == 0


def test_latency_injection(lab: LabServer) -> None:
    with open_pool(lab) as pool:
        lab.set_faults(FaultOptions(latency_ms=40))
        before = lab.counters["total"]
        start = time.perf_counter()
        ps = _ps(pool)
        ps.add_cmdlet("Get-Nothing")
        ps.invoke()
        elapsed = time.perf_counter() - start
        requests_made = lab.counters["total"] - before
        lab.set_faults(FaultOptions())
    assert requests_made >= 2
    assert elapsed >= requests_made * 0.040


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_http_500_injection_surfaces_and_recovers(lab: LabServer, auth: str) -> None:
    with open_pool(lab, auth=auth) as pool:
        lab.set_faults(FaultOptions(error_requests=frozenset({1}), actions=frozenset({"Command"})))
        ps = _ps(pool)
        ps.add_cmdlet("Get-Nothing")
        with pytest.raises(WinRMTransportError) as info:
            ps.invoke()
        assert info.value.code == 500
        assert lab.counters["errors_injected"] >= 1
        ps2 = _ps(pool)
        ps2.add_cmdlet("Get-Nothing")
        assert ps2.invoke() == []  # only the first Command was failed


def test_http_500_fraction_is_deterministic(lab: LabServer) -> None:
    def run() -> list[bool]:
        lab.set_faults(FaultOptions(error_rate=0.5, seed=42, actions=frozenset({"Command"})))
        results = []
        with open_pool(lab) as pool:
            for _ in range(12):
                ps = _ps(pool)
                ps.add_cmdlet("Get-Nothing")
                try:
                    ps.invoke()
                    results.append(True)
                except WinRMTransportError:
                    results.append(False)
        return results

    first, second = run(), run()
    assert first == second
    assert True in first and False in first


def test_dropped_connection(lab: LabServer) -> None:
    with open_pool(lab) as pool:
        lab.set_faults(FaultOptions(drop_requests=frozenset({1}), actions=frozenset({"Command"})))
        ps = _ps(pool)
        ps.add_cmdlet("Get-Nothing")
        with pytest.raises(requests.exceptions.ConnectionError):
            ps.invoke()
        assert lab.counters["dropped"] >= 1
        ps2 = _ps(pool)
        ps2.add_cmdlet("Get-Nothing")
        assert ps2.invoke() == []


def test_receive_timeout_fault_is_retried_by_client(engine: FakeEngine) -> None:
    """A Receive with nothing to return faults w:TimedOut after OperationTimeout; pypsrp polls again."""

    gate = threading.Event()

    def slow(statements: list[Statement], pipeline_input: list[Any]) -> PipelineResult:
        gate.wait(5)
        return PipelineResult(output=["late"])

    engine.handlers["Slow-Thing"] = slow
    with LabServer(engine, users={USER: PASSWORD}) as server:
        with open_pool(server, operation_timeout=1) as pool:
            ps = _ps(pool)
            ps.add_cmdlet("Slow-Thing")
            threading.Timer(1.5, gate.set).start()
            out = ps.invoke()
        assert out == ["late"]
        assert server.counters["Receive"] >= 2


def test_stop_closes_open_pools_without_hanging(engine: FakeEngine) -> None:
    server = LabServer(engine, users={USER: PASSWORD}).start()
    pool = open_pool(server)
    assert server.open_shells == 1
    start = time.perf_counter()
    server.close()
    assert time.perf_counter() - start < 3
    assert server.open_shells == 0
    assert pool.is_alive() is False
    # a stopped server can be started again (new port when port=0), NTLM store included
    with server, open_pool(server, auth="ntlm") as again:
        assert again.is_alive()


def test_serve_forever_in_foreground_thread(engine: FakeEngine) -> None:
    server = LabServer(engine, users={USER: PASSWORD})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            server.port  # noqa: B018 - raises until bound
            break
        except RuntimeError:
            time.sleep(0.01)
    with open_pool(server) as pool:
        assert pool.is_alive()
    server.stop()
    thread.join(5)
    assert not thread.is_alive()


def test_stop_signal_on_a_running_pipeline(engine: FakeEngine) -> None:
    gate = threading.Event()

    def slow(statements: list[Statement], pipeline_input: list[Any]) -> PipelineResult:
        gate.wait(5)
        return PipelineResult(output=["too late"])

    engine.handlers["Slow-Stop"] = slow
    with LabServer(engine, users={USER: PASSWORD}, pipeline_wait=0.05) as server, open_pool(server) as pool:
        ps = _ps(pool)
        ps.add_cmdlet("Slow-Stop")
        ps.begin_invoke()
        ps.stop()
        assert server.counters["Signal"] == 1
        gate.set()
        ps2 = _ps(pool)
        ps2.add_cmdlet("Get-Nothing")
        assert ps2.invoke() == []


def test_pool_level_messages(lab: LabServer) -> None:
    with open_pool(lab) as pool:
        before = lab.counters.snapshot()
        assert pool.get_available_runspaces() >= 1
        pool.max_runspaces = 3  # pypsrp spells the call id "CI" here
        pool.min_runspaces = 2
        pool.reset_runspace_state()
        assert pool.get_available_runspaces() == 3
        after = lab.counters.snapshot()
        assert after["Send"] - before["Send"] == 5  # pool-level Sends (no CommandId)
        ps = _ps(pool)
        ps.add_cmdlet("Get-Nothing")
        assert ps.invoke() == []


def test_session_key_exchange(lab: LabServer, engine: FakeEngine) -> None:
    """A secure string argument, encrypted with the session key the client asked for, reaches the engine as text
    (psrpcore's generic path: the lab's own CREATE_PIPELINE reader does not read secure strings)."""
    with open_pool(lab) as pool:
        pool.exchange_keys()
        ps = _ps(pool)
        ps.add_cmdlet("Set-Secret").add_parameter("Value", TaggedValue("SS", "s3cret <&>"))
        assert ps.invoke() == []
    assert engine.last.statements[0].commands[0].arguments == (Argument(name="Value", value="s3cret <&>"),)


def test_idle_pools_expire(engine: FakeEngine) -> None:
    with LabServer(engine, users={USER: PASSWORD}, idle_timeout=0.2) as server:
        stale = open_pool(server)
        time.sleep(0.3)
        with open_pool(server) as fresh:  # creating a pool sweeps the idle ones
            assert server.open_shells == 1
            assert fresh.is_alive() is True
        assert stale.is_alive() is False


def test_ntlm_without_message_encryption(lab: LabServer, engine: FakeEngine) -> None:
    """auth=ntlm, encryption=never: the handshake rides on the first SOAP request, bodies stay in clear."""
    pool = RunspacePool(connect(lab, auth="ntlm", encryption="never"), configuration_name="Microsoft.Exchange")
    with pool:
        ps = _ps(pool)
        ps.add_cmdlet("Get-Mailbox").add_parameter("Identity", "clear")
        ps.invoke()
    assert engine.last.user == USER
    assert engine.last.statements[0].commands[0].arguments[0].value == "clear"


def test_garbage_requests_get_answers_not_crashes(lab: LabServer) -> None:
    url = lab.url
    auth = (USER, PASSWORD)
    assert requests.get(url, auth=auth, timeout=5).status_code == 405
    assert requests.post(url + "/x", auth=auth, timeout=5).status_code == 404
    assert requests.post(url, data=b"x", timeout=5).status_code == 401
    assert requests.post(url, auth=(USER, "nope"), data=b"x", timeout=5).status_code == 401
    bad_xml = requests.post(url, auth=auth, data=b"<not-soap", timeout=5)
    assert bad_xml.status_code == 500 and b"Fault" in bad_xml.content
    encrypted_without_context = requests.post(
        url,
        auth=auth,
        data=b"--Encrypted Boundary\r\n",
        headers={"Content-Type": 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted"'},
        timeout=5,
    )
    assert encrypted_without_context.status_code == 401
    with open_pool(lab) as pool:  # the server is still fine
        assert pool.is_alive()
