"""Controllers reach services through typed dependencies: mypy sees the concrete service
type in every handler, no expression between a controller and a service is ``Any``, and
the dependencies stay out of the OpenAPI document (they are not request parameters)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from warest.api.app import create_app
from warest.api.dependencies import DEPENDENCIES
from warest.app.services import Services

ROOT = Path(__file__).resolve().parents[2]
ANY_EXPRESSION = 'Expression has type "Any"'


def mypy(*args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--show-column-numbers", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "error: Cannot find" not in run.stdout + run.stderr, run.stdout + run.stderr
    return run.stdout


def test_no_expression_in_a_controller_or_provider_is_any() -> None:
    """``--disallow-any-expr`` reports every expression typed ``Any``: an untyped
    ``state.services.users`` call would be one (there were 176 before typed wiring)."""
    report = mypy("--disallow-any-expr", "src/warest/api/controllers", "src/warest/api/dependencies.py")
    untyped = [line for line in report.splitlines() if ANY_EXPRESSION in line]
    assert untyped == [], "\n".join(untyped)
    # The check does run: Request[Principal, Any, Any] and JSON views still *contain* Any.
    assert "Expression type contains" in report


def test_a_handler_sees_the_concrete_service_type(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from warest.api.dependencies import Sandbox, Users, Webhooks\n"
        "from warest.app.records import Principal\n"
        "async def handler(users: Users, sandbox: Sandbox, webhooks: Webhooks) -> None:\n"
        "    reveal_type(users)\n"
        "    reveal_type(await users.authenticate_key('k'))\n"
        "    reveal_type(sandbox)\n"
        "    reveal_type(webhooks)\n"
    )
    report = mypy(str(probe))
    revealed = [line.split("Revealed type is ", 1)[1] for line in report.splitlines() if "Revealed" in line]
    assert revealed == [
        '"warest.app.users.UserService"',
        '"warest.app.records.Principal | None"',
        '"warest.app.sandbox.SandboxControl"',
        '"warest.app.webhooks.WebhookService | None"',
    ], report


async def _never_started() -> Services:
    raise AssertionError("the OpenAPI document needs no running server")


async def _stop() -> None:
    return None


def test_dependencies_are_not_request_parameters() -> None:
    for sandbox in (False, True):
        app = create_app(_never_started, _stop, sandbox=sandbox)
        schema: dict[str, Any] = app.openapi_schema.to_schema()
        leaked = [
            (path, method, parameter["name"])
            for path, operations in schema["paths"].items()
            for method, operation in operations.items()
            for parameter in operation.get("parameters", [])
            if parameter["name"] in DEPENDENCIES or parameter["name"] == "state"
        ]
        assert leaked == []
        # Handlers do declare them: the sessions config route takes the sessions and webhooks services.
        config = schema["paths"]["/api/v1/session/{session_id}/config"]["post"]
        assert [p["name"] for p in config["parameters"]] == ["session_id"]
