"""docker-compose.yml, the production topology: valid Compose, and what no Compose validator can
see — pinned images, settings that exist, commands that run a module of this repository, start
order that holds, and the namespace job registering the search attributes the code uses.

Two validators: the Compose Specification's JSON schema as check-jsonschema ships it (a dev
dependency, so always present), and Compose v1's own `docker-compose config` from Debian's
package (`.ci/run` installs it), which also resolves `${...}` variables and the references
between services.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.testing import WorkflowEnvironment

from domain.search_attributes import ALL as SEARCH_ATTRIBUTES
from settings import EMULATOR_FRONTEND_API_KEY, Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
# What compose refuses to start without: the secrets of its own services, and the connector's
# credentials (without them the connector would run in sandbox mode, see below).
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "PAYLOAD_ENCRYPTION_KEYS", "CODEC_SERVER_TOKEN")
REAL_CREDENTIALS = ("CLEENG_PUBLISHER_TOKEN", "MOLLIE_API_KEY")

# Modules the compose file runs that are written on their own and may not be in this tree yet.
# While one is missing its command is accepted; once it exists it is checked like the others.
# Delete each name here when its module lands.
PENDING_MODULES: frozenset[str] = frozenset()

# The `temporal operator search-attribute create --type` name of each type.
CLI_TYPE_NAMES = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    found = load_compose()["services"]
    assert isinstance(found, dict)
    return found


def connector_services() -> dict[str, dict[str, Any]]:
    """The services built from this repository's Dockerfile."""
    return {name: service for name, service in services().items() if "build" in service}


def module_of(command: list[str]) -> str:
    assert command[:2] == ["python", "-m"], f"not `python -m MODULE ...`: {command}"
    return command[2]


def depends_on(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for target, rule in (service.get("depends_on") or {}).items():
        yield target, rule["condition"]


def console_script(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else shutil.which(name)


def check_jsonschema(compose_file: Path) -> subprocess.CompletedProcess[str]:
    tool = console_script("check-jsonschema")
    if tool is None:
        pytest.skip("check-jsonschema is not installed (scripts/bootstrap dev installs it)")
    return subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(compose_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_file_follows_the_compose_specification() -> None:
    result = check_jsonschema(COMPOSE_FILE)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_specification_check_refuses_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        COMPOSE_FILE.read_text().replace(
            "condition: service_completed_successfully", "condition: service_finished", 1
        )
    )

    result = check_jsonschema(broken)

    assert result.returncode != 0
    assert "service_finished" in result.stdout


def compose_v1_config(project: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip(
            "docker-compose (Debian's package) is not installed: `apt-get install "
            "--no-install-recommends docker-compose` (.ci/run does)"
        )
    return subprocess.run(
        [tool, "config", "--quiet"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def project_copy(directory: Path, compose_text: str, *, leave_out: str | None = None) -> Path:
    """The compose file beside what it names (the mounted files, a `.env` made from
    `.env.example` with the required secrets and credentials filled in, but `leave_out`), as
    an operator's checkout has it."""
    (directory / "docker-compose.yml").write_text(compose_text)
    shutil.copytree(REPO / "deploy", directory / "deploy")
    env = ENV_EXAMPLE.read_text()
    for variable in (*REQUIRED_SECRETS, *REAL_CREDENTIALS):
        if variable != leave_out:
            assert f"\n{variable}=\n" in env, f".env.example lists {variable}, empty"
            env = env.replace(f"\n{variable}=\n", f"\n{variable}=example-{variable.lower()}\n")
    (directory / ".env").write_text(env)
    return directory


def test_compose_resolves_its_variables_and_references(tmp_path: Path) -> None:
    result = compose_v1_config(project_copy(tmp_path, COMPOSE_FILE.read_text()))

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("credential", REAL_CREDENTIALS)
def test_compose_refuses_to_start_without_real_credentials(credential: str, tmp_path: Path) -> None:
    result = compose_v1_config(
        project_copy(tmp_path, COMPOSE_FILE.read_text(), leave_out=credential)
    )

    assert result.returncode != 0
    assert f"set {credential} in .env" in result.stderr


def test_no_connector_service_can_run_in_sandbox_mode() -> None:
    """A deployment must not expose the sandbox's public front-end key: every connector
    service requires each credential whose absence means an emulated counterpart, so the API
    replicas published on every interface never run in sandbox mode."""
    for name, service in connector_services().items():
        environment = service.get("environment") or {}
        for credential in REAL_CREDENTIALS:
            assert environment.get(credential, "").startswith(f"${{{credential}:?"), (
                f"{name} does not require {credential}"
            )
    credentials: dict[str, Any] = {name.lower(): SecretStr("set") for name in REAL_CREDENTIALS}
    with_credentials = Settings.model_construct(**credentials)
    assert not with_credentials.cleeng_emulated
    assert not with_credentials.mollie_emulated
    assert EMULATOR_FRONTEND_API_KEY not in with_credentials.effective_frontend_api_keys
    # The API is published off loopback: that is only safe because of the rule above.
    assert not services()["api"]["ports"][0].startswith("127.0.0.1:")


def test_compose_config_refuses_a_dependency_on_a_missing_service(tmp_path: Path) -> None:
    text = COMPOSE_FILE.read_text().replace("      temporal-schema:\n", "      temporal-setup:\n")
    result = compose_v1_config(project_copy(tmp_path, text))

    assert result.returncode != 0
    assert "temporal-setup" in result.stderr


def test_every_image_is_pinned_to_a_version() -> None:
    for name, service in services().items():
        if "image" not in service:
            assert "build" in service, f"{name}: neither an image nor a build"
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert "/" not in tag, f"{name}: {image} has no tag"
        assert re.fullmatch(r"\d+(\.\d+)+", tag), f"{name}: {image} is not pinned to a version"
        assert "auto-setup" not in repository, f"{name}: {image} is deprecated"


def test_temporal_admin_tools_match_the_server_version() -> None:
    # The admin tools carry the schema the server expects: one version for both.
    tags = {
        service["image"].rpartition(":")[2]
        for service in services().values()
        if service.get("image", "").startswith(("temporalio/server:", "temporalio/admin-tools:"))
    }
    assert len(tags) == 1, tags


def test_connector_services_set_only_real_settings() -> None:
    for name, service in connector_services().items():
        for variable in service.get("environment") or {}:
            assert variable.lower() in Settings.model_fields, f"{name}: {variable} is no setting"


def test_every_connector_command_runs_a_module_of_this_repository() -> None:
    modules = {name: module_of(s["command"]) for name, s in connector_services().items()}

    for name, module in modules.items():
        if importlib.util.find_spec(module) is None:
            assert module in PENDING_MODULES, f"{name}: no module {module} in this repository"
    # A pending name the file no longer runs has no reason to stay on the list.
    assert set(modules.values()) >= PENDING_MODULES


def test_the_image_carries_every_module_the_services_run() -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^COPY \. \.$", dockerfile, re.MULTILINE), "the Dockerfile copies the tree"

    for service in connector_services().values():
        top_level = module_of(service["command"]).split(".")[0]
        for shipped in (top_level, f"{top_level}.py"):
            assert not any(fnmatch.fnmatch(shipped, pattern) for pattern in ignored), shipped


def test_start_order_conditions_hold() -> None:
    every = services()
    for name, service in every.items():
        for target, condition in depends_on(service):
            assert target in every, f"{name} depends on a missing service {target}"
            if condition == "service_healthy":
                assert "healthcheck" in every[target], f"{name} waits for {target}'s health"
            if condition == "service_completed_successfully":
                assert every[target].get("restart") == "no", f"{target} is a one-shot job"
    # The connector's processes wait for a namespace that exists.
    for name in ("worker", "api", "connector-setup"):
        assert ("temporal-namespace", "service_completed_successfully") in set(
            depends_on(every[name])
        ), name


def test_namespace_job_registers_the_search_attributes_the_code_uses() -> None:
    job = services()["temporal-namespace"]["environment"]
    registered = set(job["SEARCH_ATTRIBUTES"].split())

    assert registered == {
        f"{key.name}={CLI_TYPE_NAMES[key.indexed_value_type]}" for key in SEARCH_ATTRIBUTES
    }
    # At least 30 days: longer than Cleeng's and Mollie's redelivery windows.
    retention = job["NAMESPACE_RETENTION"]
    assert re.fullmatch(r"\d+h", retention)
    assert int(retention[:-1]) >= 30 * 24


async def test_namespace_job_sets_up_a_namespace_and_can_run_again(
    temporal_env: WorkflowEnvironment,
) -> None:
    """The job's script, with the `temporal` CLI, against the dev server: a new namespace with
    the compose file's retention and attributes; the second run finds them all in place."""
    job = services()["temporal-namespace"]
    namespace = f"compose-{uuid.uuid4().hex[:8]}"
    environment = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": namespace,
        "NAMESPACE_RETENTION": job["environment"]["NAMESPACE_RETENTION"],
        "SEARCH_ATTRIBUTES": job["environment"]["SEARCH_ATTRIBUTES"],
    }
    script = REPO / job["entrypoint"][1].replace("/deploy/", "deploy/temporal/", 1)

    def run_job() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(script)], env=environment, capture_output=True, text=True, timeout=120
        )

    first, second = run_job(), run_job()

    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    assert "is registered" not in first.stdout
    assert "search attribute CleengOrderId is registered" in second.stdout
    described = await temporal_env.client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    retention = described.config.workflow_execution_retention_ttl.ToSeconds()
    assert retention == int(job["environment"]["NAMESPACE_RETENTION"][:-1]) * 3600
    listed = await temporal_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    assert {
        name: value_type
        for name, value_type in listed.custom_attributes.items()
        if not name.startswith("Temporal")
    } == {key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in SEARCH_ATTRIBUTES}


def test_mounted_files_exist() -> None:
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts a missing {source}"


def test_api_replicas_each_have_a_host_port() -> None:
    api = services()["api"]
    [mapping] = api["ports"]
    first, _, last = mapping.split(":")[0].partition("-")

    assert int(last or first) - int(first) + 1 >= api["deploy"]["replicas"]


def test_web_ui_reaches_the_codec_server_where_the_browser_can() -> None:
    every = services()
    endpoint = urlsplit(every["temporal-ui"]["environment"]["TEMPORAL_CODEC_ENDPOINT"])
    published = {mapping.rsplit(":", 2)[-2] for mapping in every["codec"]["ports"]}

    assert str(endpoint.port) in published


def test_env_example_lists_every_variable_compose_reads() -> None:
    listed = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))

    assert interpolated <= listed
    # Everything else .env holds is a setting of the connector.
    for variable in listed - interpolated:
        assert variable.lower() in Settings.model_fields, f".env.example: {variable}"
