"""A bounded property-based run over the app's own OpenAPI document: for every operation,
valid and invalid inputs (schemathesis, positive and negative generation), sent with an admin
key and with a user key; no answer may be a 5xx.

Generated values rarely hit the inputs that break servers (a number beyond 64 bits, a NUL,
an unpaired surrogate, a very long text, deeply nested JSON), so about half the cases get one
of those in a query parameter, a path parameter, a body field or as the whole body.

Deterministic (``derandomize``), no example database, no shrinking: the run is the same on
every machine and small enough for ``make test``. Every 5xx is collected with its request and
the logged traceback, and all are reported together.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from schemathesis import GenerationMode

from tests.conftest import admin_headers
from warest.asgi import create_litestar
from warest.config import Settings

BASE_URL = "http://127.0.0.1:7308"
EXAMPLES_PER_MODE = 8
SESSION = "main"
SKIPPED_OPERATIONS = {
    "GET /api/v1/events/stream",  # a live stream: it answers 200 and never ends
}
GENERATED_AUTH = ("x-warest-api-key", "authorization", "cookie")

HOSTILE_TEXT = (
    "99999999999999999999999",
    "-99999999999999999999999",
    "9223372036854775808",
    "1e309",
    "NaN",
    "a\x00b",
    "\ud800",
    "x" * 5000,
    "../../etc/passwd",
    "'; SELECT 1; --",
    " ",
)
HOSTILE_JSON: tuple[Any, ...] = (*HOSTILE_TEXT, 10**30, -(10**30), 2**63, 1e308, [[[[[]]]]], {"": None})
SWEPT_VALUES = ("99999999999999999999999", "-99999999999999999999999", "a\x00b", "\ud800", "x" * 5000)
SWEEP_DEFAULTS = {"session_id": SESSION, "sessionId": SESSION, "chat_id": "6281234500000@s.whatsapp.net"}
DEEP_JSON = "[" * 10_000 + "]" * 10_000


class ErrorLog(logging.Handler):
    """The app's logged tracebacks, to say where each 5xx came from."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def since(self, index: int) -> tuple[str, str]:
        """What was logged from ``index`` on, and its first error's kind and place."""
        lines, signature = [], "no traceback logged"
        for record in self.records[index:]:
            lines.append(record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                frames = traceback.extract_tb(error.__traceback__)[-3:]
                where = " <- ".join(
                    f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames[::-1]
                )
                lines.append(f"  {type(error).__name__}: {str(error)[:200]} at {where}")
                if signature == "no traceback logged":
                    signature = f"{type(error).__name__} at {where}"
        return "\n".join(lines), signature


@dataclass
class Findings:
    """Failing inputs by operation and by kind of failure (one example of each kind)."""

    failures: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    sent: int = 0

    def add(self, operation: str, signature: str, report: str) -> None:
        printable = "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in report)
        self.failures.setdefault(operation, {}).setdefault(signature, []).append(printable)

    def summary(self) -> str:
        parts = [f"{len(self.failures)} operations answered 5xx ({self.sent} requests):"]
        for operation, kinds in sorted(self.failures.items()):
            for signature, reports in kinds.items():
                inputs = sorted({report.split(" as ", 1)[0] for report in reports})
                parts.append(f"\n== {operation}: {signature} ({len(reports)} inputs); first:\n{reports[0]}")
                parts.append(f"   inputs: {', '.join(inputs)}")
        return "\n".join(parts)


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient[Any]]:
    with TestClient(app=create_litestar(settings), base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logger = logging.getLogger("warest")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def cases(operation: Any, mode: GenerationMode) -> st.SearchStrategy[Any]:
    """Generated cases, and as many naming the run's session where the operation takes one
    (a random name stops at 'session not found'; the session's own lets the rest be checked)."""
    generated = operation.as_strategy(mode)
    names = {(parameter.name, parameter.location.value) for parameter in operation.iter_parameters()}
    pinned: dict[str, Any] = {}
    if ("session_id", "path") in names:
        pinned["path_parameters"] = {"session_id": SESSION}
    if ("sessionId", "query") in names:
        pinned["query"] = {"sessionId": SESSION}
    return st.one_of(generated, operation.as_strategy(mode, **pinned)) if pinned else generated


# (where, which of the case's fields, which hostile value): None leaves the case as generated.
HOSTILITY = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(("query", "path", "body", "whole body")), st.integers(0, 99), st.integers(0, 99)
    ),
)


def make_hostile(case: Any, hostility: tuple[str, int, int] | None) -> None:
    """Puts a hostile value in one place of ``case``: a query parameter (any the operation
    declares), a path parameter or a field of the body (nothing when it has no such place;
    the whole body is replaced when the request is built)."""
    if hostility is None or hostility[0] == "whole body":
        return
    where, field_index, value_index = hostility
    if where == "query" and case.query is None:
        case.query = {}
    container = {"query": case.query, "path": case.path_parameters, "body": case.body}[where]
    if not isinstance(container, dict):
        return
    names = set(container)
    if where == "query":
        names |= {p.name for p in case.operation.iter_parameters() if p.location.value == "query"}
    if not names:
        return
    name = sorted(names, key=str)[field_index % len(names)]
    values = HOSTILE_JSON if where == "body" else HOSTILE_TEXT
    container[name] = values[value_index % len(values)]


def shown(request: dict[str, Any]) -> str:
    cut = {k: v[:120] + "..." if isinstance(v, str) and len(v) > 120 else v for k, v in request.items()}
    return repr(cut)


def _quote(value: Any) -> str:
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


def request_of(case: Any, key: str, whole_body: bool) -> dict[str, Any]:
    path = case.formatted_path
    query = []
    for name, value in (case.query or {}).items():
        for item in value if isinstance(value, list) else [value]:
            query.append(f"{_quote(name)}={_quote(item)}")
    generated = (case.headers or {}).items()
    headers = {str(k): str(v) for k, v in generated if str(k).lower() not in GENERATED_AUTH}
    headers["X-WAREST-API-KEY"] = key
    request: dict[str, Any] = {
        "method": case.method,
        "url": path + ("?" + "&".join(query) if query else ""),
        "headers": headers,
    }
    if whole_body:
        headers["Content-Type"] = "application/json"
        request["content"] = DEEP_JSON
    elif case.body is not None and not isinstance(case.body, schemathesis.core.NotSet):
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        if "json" in kwargs:
            request["json"] = kwargs["json"]
        elif isinstance(kwargs.get("data"), bytes | str):
            request["content"] = kwargs["data"]
        else:
            raise ValueError("a body this run does not send")
    return request


@dataclass
class Run:
    client: TestClient[Any]
    keys: dict[str, str]
    errors: ErrorLog
    findings: Findings
    protected_usernames: frozenset[str]

    def operation(self, operation: Any, mode: GenerationMode) -> None:
        label = f"{operation.method.upper()} {operation.path}"

        @settings(
            max_examples=EXAMPLES_PER_MODE,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases(operation, mode), who=st.sampled_from(sorted(self.keys)), hostility=HOSTILITY)
        def send(case: Any, who: str, hostility: tuple[str, int, int] | None) -> None:
            make_hostile(case, hostility)
            if self.protected_usernames & {str(v) for v in (case.path_parameters or {}).values()}:
                reject()  # rotating or disabling the run's own users would end it
            try:
                whole_body = hostility is not None and hostility[0] == "whole body"
                request = request_of(case, self.keys[who], whole_body)
            except (TypeError, ValueError):  # not expressible as an HTTP request
                reject()
            if not self.send(label, mode.value, who, request):
                reject()  # the client cannot send it

        send()

    def sweep(self, operation: Any) -> None:
        """Every declared query and path parameter, one at a time, with each of the values
        that most often break servers (generation alone reaches them too rarely)."""
        label = f"{operation.method.upper()} {operation.path}"
        parameters = [p for p in operation.iter_parameters() if p.location.value in {"query", "path"}]
        defaults = {
            p.name: SWEEP_DEFAULTS.get(p.name, "x")
            for p in parameters
            if p.location.value == "path" or p.name in SWEEP_DEFAULTS
        }
        for parameter in parameters:
            for value in SWEPT_VALUES:
                values = {**defaults, parameter.name: value}
                path = operation.path
                query = []
                for p in parameters:
                    if p.location.value == "path":
                        path = path.replace("{" + p.name + "}", _quote(values[p.name]))
                    elif p.name in values:
                        query.append(f"{_quote(p.name)}={_quote(values[p.name])}")
                url = path + ("?" + "&".join(query) if query else "")
                for who, key in sorted(self.keys.items()):
                    headers = {"X-WAREST-API-KEY": key}
                    request = {"method": operation.method.upper(), "url": url, "headers": headers}
                    self.send(label, f"{parameter.name}={value[:24]!r}", who, request)

    def send(self, label: str, mode: str, who: str, request: dict[str, Any]) -> bool:
        """Sends ``request``; a 5xx is a finding. False when the client could not send it."""
        logged = len(self.errors.records)
        try:
            response = self.client.request(**request, timeout=30)
        except (UnicodeEncodeError, httpx.InvalidURL, httpx.LocalProtocolError):
            return False
        except Exception as error:  # escaped every handler: a server error too
            self.findings.add(label, f"raised {type(error).__name__}", f"{mode} as {who}: {shown(request)}")
            return True
        self.findings.sent += 1
        if response.status_code >= 500:
            logged_text, signature = self.errors.since(logged)
            self.findings.add(
                label,
                signature,
                f"{mode} as {who}: {shown(request)}\n"
                f"  -> {response.status_code} {response.text[:200]}\n{logged_text}",
            )
        return True


def test_no_input_answers_a_server_error(app_client: TestClient[Any], error_log: ErrorLog) -> None:
    document = app_client.get("/docs/openapi.json", headers=admin_headers())
    assert document.status_code == 200, document.text
    schema = schemathesis.openapi.from_dict(document.json())
    created = app_client.post("/api/v1/users", json={"username": "fuzzer"}, headers=admin_headers())
    assert created.status_code == 201, created.text
    keys = {"admin": admin_headers()["X-WAREST-API-KEY"], "user": created.json()["results"][0]["apiKey"]}
    for key in keys.values():
        session = app_client.post(
            "/api/v1/session/create", json={"sessionId": SESSION}, headers={"X-WAREST-API-KEY": key}
        )
        assert session.status_code == 202, session.text
    run = Run(app_client, keys, error_log, Findings(), frozenset({"admin", "fuzzer"}))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50

    for operation in operations:
        if f"{operation.method.upper()} {operation.path}" in SKIPPED_OPERATIONS:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run.operation(operation, mode)
        run.sweep(operation)

    assert run.findings.sent > len(operations) * EXAMPLES_PER_MODE
    assert not run.findings.failures, run.findings.summary()
