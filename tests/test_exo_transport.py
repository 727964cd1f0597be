"""The Exchange Online REST client against canned HTTP (``responses``): headers, paging, $batch matched by id,
retries (429 Retry-After, 503 backoff, bounded), one token refresh on 401, error mapping by exception type."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests
import responses

from provisioner.domain.model import Identity, ItemState, PlanItem, Result, Trustee
from provisioner.engine import shapes
from provisioner.inputs.config import ExoSettings
from provisioner.powershell.steps import StepOptions, command, grant
from provisioner.transport.backoff import Backoff
from provisioner.transport.exo.cloud import endpoints
from provisioner.transport.exo.errors import map_error
from provisioner.transport.exo.http import Call, ExoClient
from provisioner.transport.exo.runner import ExoRunner
from provisioner.transport.runner import Pipeline, TransportLost

TID = "11111111-2222-3333-4444-555555555555"
ENDPOINTS = endpoints(ExoSettings(tenant="contoso.onmicrosoft.com"))
INVOKE = ENDPOINTS.invoke_url(TID)
BATCH = ENDPOINTS.batch_url(TID)
ANCHOR = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@" + TID
NOT_FOUND = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"


class FakeTokens:
    def __init__(self) -> None:
        self.endpoints = ENDPOINTS
        self.http = requests.Session()
        self.current = 1
        self.refreshes = 0

    def token(self) -> str:
        return f"token-{self.current}"

    def refresh(self) -> str:
        self.refreshes += 1
        self.current += 1
        return self.token()

    def tenant_id(self) -> str:
        return TID


def client(**options: Any) -> tuple[ExoClient, FakeTokens, list[float]]:
    tokens = FakeTokens()
    slept: list[float] = []
    exo = ExoClient(tokens, tokens.http, sleep=slept.append, **options)  # type: ignore[arg-type]
    return exo, tokens, slept


def error(kind: str, text: str = "The operation couldn't be performed.", status_code: str = "NotFound",
          ) -> dict[str, Any]:
    return {"error": {"code": status_code, "message": "Error executing cmdlet",
                      "details": [{"code": "Context", "target": "", "message": f"Ex6F9304|{kind}|{text}"}]}}


ACE = {"Identity": "user1", "User": "CONTOSO\\svc", "AccessRights": ["FullAccess"], "Deny": False,
       "IsInherited": False, "InheritanceType": "All"}


@responses.activate
def test_headers_body_and_a_fresh_request_id_per_call() -> None:
    responses.post(INVOKE, json={"value": [{"Guid": "g"}], "@adminapi.warnings": ["careful"]})
    exo, _, _ = client(page_size=250)
    first = exo.invoke(Call("Get-Mailbox", {"Identity": "user1"}))
    exo.invoke(Call("Get-Mailbox", {"Identity": "user2"}))
    assert first.values == [{"Guid": "g"}] and first.warnings == ["careful"] and first.error is None
    sent = [call.request for call in responses.calls]
    assert sent[0].headers["Authorization"] == "Bearer token-1"
    assert sent[0].headers["X-AnchorMailbox"] == ANCHOR
    assert sent[0].headers["Prefer"] == "odata.maxpagesize=250"
    ids = [request.headers["client-request-id"] for request in sent]
    assert len(set(ids)) == 2 and all(uuid.UUID(value) for value in ids)
    assert json.loads(sent[0].body or b"") == {"CmdletInput": {"CmdletName": "Get-Mailbox",
                                                               "Parameters": {"Identity": "user1"}}}


@responses.activate
def test_paging_re_posts_the_next_link_with_the_same_body() -> None:
    link = INVOKE + "?$skiptoken=abc"
    responses.post(link, json={"value": [{"n": 3}]})
    responses.post(INVOKE, json={"value": [{"n": 1}, {"n": 2}], "@odata.nextLink": link})
    exo, _, _ = client()
    reply = exo.invoke(Call("Get-Mailbox", {"ResultSize": "Unlimited"}))
    assert [value["n"] for value in reply.values] == [1, 2, 3]
    assert responses.calls[1].request.url == link
    assert responses.calls[1].request.body == responses.calls[0].request.body


def _batch_answer(answers: dict[str, tuple[int, Any]], drop: set[str] = frozenset()) -> Any:  # type: ignore[assignment]
    """A $batch callback: each request's answer by its Identity parameter, in reversed order, some left out."""
    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body or b"")
        assert len(body["requests"]) <= 10
        out = []
        for item in body["requests"]:
            identity = item["body"]["CmdletInput"]["Parameters"]["Identity"]
            assert item["headers"]["X-AnchorMailbox"] == ANCHOR and item["url"] == INVOKE
            if identity in drop:
                drop.discard(identity)
                continue
            status, payload = answers[identity]
            out.append({"id": item["id"], "status": status, "body": payload, "headers": {}})
        return 200, {}, json.dumps({"responses": list(reversed(out))})
    return callback


@responses.activate
def test_batch_results_are_matched_by_id_and_a_rejected_write_is_never_done() -> None:
    mailboxes = [f"user{i}" for i in range(12)]
    answers: dict[str, tuple[int, Any]] = {m: (200, {"value": [dict(ACE, Identity=m)]}) for m in mailboxes}
    answers["user4"] = (404, error(NOT_FOUND))
    answers["user7"] = (400, error("Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException",
                                   "ambiguous", "BadRequest"))
    responses.add_callback(responses.POST, BATCH, callback=_batch_answer(answers, {"user9"}))
    exo, _, _ = client()
    trustee = Trustee(Identity("svc@contoso.com"))
    steps = [grant(PlanItem(Identity(m), trustee, ItemState.TO_ADD), StepOptions()) for m in mailboxes]
    written = shapes.write_each(ExoRunner(exo), steps)
    results = {item.mailbox.value: item.result for item in written if not isinstance(item, shapes.Pending)}
    assert results.pop("user4") is Result.FAILED and results.pop("user7") is Result.FAILED
    assert set(results.values()) == {Result.GRANTED} and len(results) == 10  # user9 answered on the second round
    assert exo.counters["batch"] == 3  # 10 + 2, then user9 again


@responses.activate
def test_batch_item_throttled_is_resent_after_its_retry_after() -> None:
    state = {"first": True}

    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body or b"")
        out = []
        for item in body["requests"]:
            if state["first"] and item["body"]["CmdletInput"]["Parameters"]["Identity"] == "b":
                state["first"] = False
                out.append({"id": item["id"], "status": 429, "headers": {"Retry-After": "3"}, "body": {}})
            else:
                out.append({"id": item["id"], "status": 200, "body": {"value": []}})
        return 200, {}, json.dumps({"responses": out})

    responses.add_callback(responses.POST, BATCH, callback=callback)
    exo, _, slept = client()
    replies = exo.invoke_many([Call("Get-MailboxPermission", {"Identity": m, "User": "t"}) for m in "abc"])
    assert all(reply.error is None for reply in replies) and slept == [3.0]


@responses.activate
def test_401_refreshes_the_token_once() -> None:
    responses.post(INVOKE, status=401)
    responses.post(INVOKE, json={"value": []})
    exo, tokens, _ = client()
    assert exo.invoke(Call("Get-Mailbox", {"Identity": "x"})).error is None
    assert tokens.refreshes == 1
    assert responses.calls[1].request.headers["Authorization"] == "Bearer token-2"


@responses.activate
def test_a_second_401_is_a_lost_session_not_a_loop() -> None:
    responses.post(INVOKE, status=401)
    exo, tokens, _ = client()
    with pytest.raises(TransportLost):
        exo.invoke(Call("Get-Mailbox", {"Identity": "x"}))
    assert tokens.refreshes == 1 and len(responses.calls) == 2


@responses.activate
def test_429_honours_retry_after() -> None:
    responses.post(INVOKE, status=429, headers={"Retry-After": "7"})
    responses.post(INVOKE, json={"value": [{"n": 1}]})
    exo, _, slept = client()
    assert exo.invoke(Call("Get-Mailbox", {"Identity": "x"})).values == [{"n": 1}]
    assert slept == [7.0]


@responses.activate
def test_503_retries_are_bounded_and_end_transient() -> None:
    responses.post(INVOKE, status=503)
    exo, _, slept = client(backoff=Backoff(retries=3, max_wait=100, base=1, cap=30))
    reply = exo.invoke(Call("Add-MailboxPermission", {"Identity": "x", "User": "t"}))
    assert reply.error is not None and reply.error.transient and not reply.error.not_found
    assert len(responses.calls) == 4 and len(slept) == 3 and sum(slept) <= 100


@responses.activate
def test_a_transient_exception_type_is_retried() -> None:
    responses.post(INVOKE, status=500, json=error("Microsoft.Exchange.Data.Directory.ADTransientException",
                                                  "try later", "InternalServerError"))
    responses.post(INVOKE, json={"value": []})
    exo, _, slept = client()
    assert exo.invoke(Call("Get-Mailbox", {"Identity": "x"})).error is None and len(slept) == 1


@pytest.mark.parametrize("text", ["The operation couldn't be performed because object 'x' couldn't be found.",
                                  "Der Vorgang konnte nicht ausgeführt werden: Objekt 'x' nicht gefunden."])
def test_error_mapping_is_by_exception_type_not_by_text(text: str) -> None:
    info = map_error(404, error(NOT_FOUND, text), "Get-Mailbox")
    assert info.not_found and info.definitive and not info.transient
    assert info.reason == "ManagementObjectNotFoundException" and info.category == "ObjectNotFound"
    assert info.fq_error_id == f"Ex6F9304,{NOT_FOUND}" and info.message == text


def test_error_mapping_ambiguous_rbac_json_string_and_empty_403() -> None:
    ambiguous = map_error(400, error("Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException"), "X")
    assert ambiguous.definitive and not ambiguous.not_found
    denied = map_error(400, error("Microsoft.Exchange.Configuration.Authorization.CmdletAccessDeniedException"), "X")
    assert denied.category == "PermissionDenied" and not denied.transient
    wrapped = {"error": {"code": "NotFound", "message": "Error executing cmdlet", "details": [
        {"code": "Context", "message": json.dumps(f"Ex1|{NOT_FOUND}|gone")}]}}
    assert map_error(404, wrapped, "X").not_found
    as_object = {"error": {"details": [{"message": json.dumps({"ExceptionType": NOT_FOUND, "Message": "gone"})}]}}
    assert map_error(404, as_object, "X").not_found
    empty = map_error(403, None, "Remove-MailboxPermission")
    assert empty.reason == "CmdletAccessDenied" and "Remove-MailboxPermission" in empty.message
    assert not empty.transient and not empty.not_found


# ---------------------------------------------------------------------------------------------- review findings
@responses.activate
@pytest.mark.parametrize("body", [b"<html>proxy login</html>", b"", b'{"unexpected": 1}'])
def test_a_read_answered_200_without_a_result_list_is_never_absent(body: bytes) -> None:
    responses.post(INVOKE, body=body, status=200)
    exo, _, slept = client(backoff=Backoff(retries=2, max_wait=1, base=0.01, cap=0.01))
    reply = exo.invoke(Call("Get-MailboxPermission", {"Identity": "user1", "User": "svc"}))
    assert reply.error is not None and reply.error.transient and reply.error.reason == "InvalidResult"
    assert len(slept) == 2  # retried, bounded
    raw = ExoRunner(exo).run(Pipeline.of(command("Get-MailboxPermission", ("Identity", "user1"), ("User", "svc"),
                                                 options=StepOptions())))
    assert raw.failure is not None  # the engine sees an unreadable state: unknown, never "no entries"


@responses.activate
def test_next_links_are_followed_once_and_only_to_the_endpoint() -> None:
    loop = INVOKE + "?page=2"
    responses.post(INVOKE, json={"value": [{"a": 1}], "@odata.nextLink": loop})
    responses.post(loop, json={"value": [{"a": 2}], "@odata.nextLink": loop})
    exo, _, _ = client()
    reply = exo.invoke(Call("Get-Mailbox", {"ResultSize": "Unlimited"}))
    assert reply.error is not None and "same @odata.nextLink twice" in reply.error.message
    assert len(responses.calls) == 2

    responses.reset()
    responses.post(INVOKE, json={"value": [], "@odata.nextLink": "https://evil.example/x"})
    reply = exo.invoke(Call("Get-Mailbox", {"ResultSize": "Unlimited"}))
    assert reply.error is not None and "another host" in reply.error.message
    assert [call.request.url for call in responses.calls] == [INVOKE]  # the token never left for evil.example


@responses.activate
def test_a_batch_item_with_an_odd_status_is_resent_not_a_crash() -> None:
    rounds = {"n": 0}

    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        rounds["n"] += 1
        items = json.loads(request.body or b"")["requests"]
        status: Any = "OK" if rounds["n"] == 1 else 200
        return 200, {}, json.dumps({"responses": [{"id": i["id"], "status": status, "body": {"value": []}}
                                                  for i in items]})

    responses.add_callback(responses.POST, BATCH, callback=callback)
    exo, _, _ = client()
    replies = exo.invoke_many([Call("Get-MailboxPermission", {"Identity": m, "User": "t"}) for m in "ab"])
    assert [reply.error for reply in replies] == [None, None] and rounds["n"] == 2


@responses.activate
def test_a_token_failure_during_the_run_loses_the_session_instead_of_crashing() -> None:
    exo, tokens, _ = client()

    def broken() -> str:
        raise ValueError("the authority answered something msal cannot read")

    tokens.token = broken  # type: ignore[method-assign]
    with pytest.raises(TransportLost, match="no token from the authority"):
        exo.invoke(Call("Get-Mailbox", {"Identity": "user1"}))


@responses.activate
def test_a_grant_is_proven_only_by_a_full_access_allow_ace() -> None:
    trustee = Trustee(Identity("svc@contoso.com"))
    step = grant(PlanItem(Identity("user1"), trustee, ItemState.TO_ADD), StepOptions())
    for value, proven in (([dict(ACE)], True), ([{}], False), ([dict(ACE, AccessRights=["ReadPermission"])], False),
                          ([dict(ACE, Deny=True)], False), ([], False)):
        responses.reset()
        responses.post(INVOKE, json={"value": value})
        exo, _, _ = client()
        [written] = shapes.write_each(ExoRunner(exo), [step])
        assert (not isinstance(written, shapes.Pending)) == proven, value  # unproven: confirmed by a read
