"""docker-compose.yml and the Dockerfile: valid offline and consistent with the settings object."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests
import yaml

from scraiber.label_studio_server import banned_subnets_except
from scraiber.settings import Settings

ROOT = Path(__file__).parents[1]
REQUIRED = {
    "POSTGRES_PASSWORD": "pg-secret",
    "LABEL_STUDIO_PASSWORD": "ls-secret-123",
    "LABEL_STUDIO_API_KEY": "0123456789abcdef0123",
    "SCRAIBER_BASIC_AUTH_PASS": "backend-secret",
    "S3_ACCESS_KEY": "s3-access-4711",
    "S3_SECRET_KEY": "s3-secret-4711",
}
# read by libraries, not by the settings object (documented in docs/settings.md: scraiber.settings_reference)
LIBRARY_VARIABLES = {"MLFLOW_S3_ENDPOINT_URL"}


def _config(env: dict[str, str]) -> subprocess.CompletedProcess:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose (Debian package) is missing: run `bash .ci/install --test`"
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    return subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    result = _config(REQUIRED)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _aliases() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names.update(alias.choices if alias is not None else [])
    return names


def test_compose_validates_offline(compose):
    assert set(compose["services"]) >= {"postgres", "label-studio", "seaweedfs", "mlflow", "backend"}
    assert compose["services"]["label-studio"]["image"] == "heartexlabs/label-studio:1.23.2"


def test_every_long_running_service_has_a_healthcheck_and_named_volumes(compose):
    for name, service in compose["services"].items():
        if service.get("restart") != "no":  # one-shot jobs (databases, bucket) have none
            assert "healthcheck" in service, name
    assert set(compose["volumes"]) == {"postgres-data", "label-studio-data", "seaweedfs-data", "backend-data"}


def test_secrets_are_required_not_defaulted():
    for variable in REQUIRED:
        missing = _config({k: v for k, v in REQUIRED.items() if k != variable})
        assert missing.returncode != 0
        assert f"set {variable} in .env" in missing.stderr


def test_backend_environment_matches_the_settings_object(compose):
    environment = compose["services"]["backend"]["environment"]
    unknown = set(environment) - _aliases() - LIBRARY_VARIABLES
    assert not unknown, f"compose sets variables the settings object does not read: {sorted(unknown)}"
    settings = Settings(**{k: v for k, v in environment.items() if k not in LIBRARY_VARIABLES})
    assert settings.label_studio_url == "http://label-studio:8080"
    assert settings.allowed_buckets == ["scraiber"]
    assert not settings.demo and settings.basic_auth_user == "scraiber"


def test_label_studio_can_reach_only_the_pinned_compose_network(compose):
    (subnet,) = [entry["subnet"] for entry in compose["networks"]["default"]["ipam"]["config"]]
    environment = compose["services"]["label-studio"]["environment"]
    assert environment["ML_BLOCK_LOCAL_IP"] == "false"
    assert environment["USE_DEFAULT_BANNED_SUBNETS"] == "false"
    banned = environment["USER_ADDITIONAL_BANNED_SUBNETS"].split(",")
    assert banned == banned_subnets_except([subnet])  # every other private network stays banned
    assert {"127.0.0.0/8", "169.254.0.0/16", "10.0.0.0/8", "192.168.0.0/16"} <= set(banned)
    assert all(
        service.get("networks", {"default": None}).keys() == {"default"} for service in compose["services"].values()
    )


def test_label_studio_signup_needs_an_invitation_and_knows_its_public_url(compose):
    environment = compose["services"]["label-studio"]["environment"]
    assert environment["DISABLE_SIGNUP_WITHOUT_LINK"] == "true"
    assert environment["LABEL_STUDIO_HOST"] == environment["CSRF_TRUSTED_ORIGINS"] == "http://localhost:8080"
    public = _config({**REQUIRED, "LABEL_STUDIO_HOST": "https://labels.example.org"})
    environment = yaml.safe_load(public.stdout)["services"]["label-studio"]["environment"]
    assert environment["LABEL_STUDIO_HOST"] == environment["CSRF_TRUSTED_ORIGINS"] == "https://labels.example.org"


def test_mlflow_is_published_on_the_host_loopback_only(compose):
    service = compose["services"]["mlflow"]
    assert [(p["host_ip"], p["published"]) if isinstance(p, dict) else p for p in service["ports"]] in (
        [("127.0.0.1", 5000)], [("127.0.0.1", "5000")], ["127.0.0.1:5000:5000/tcp"], ["127.0.0.1:5000:5000"],
    )  # fmt: skip
    published = [name for name, s in compose["services"].items() if s.get("ports")]
    assert sorted(published) == ["label-studio", "mlflow"]


def test_no_password_on_a_command_line(compose):
    for name, service in compose["services"].items():
        for part in ("command", "entrypoint"):
            text = json.dumps(service.get(part, ""))
            assert all(REQUIRED[secret] not in text for secret in REQUIRED), f"{name}'s {part} holds a secret"


def test_the_bucket_is_created_before_mlflow_and_the_backend_need_it(compose):
    services = compose["services"]
    assert services["create-bucket"]["restart"] == "no"
    assert services["mlflow"]["depends_on"]["create-bucket"]["condition"] == "service_completed_successfully"
    assert "s3://scraiber/" in services["mlflow"]["command"] if isinstance(services["mlflow"]["command"], str) else True
    assert services["backend"]["environment"]["SCRAIBER_ARTEFACT_URI"].startswith("s3://scraiber/")


def test_build_context_is_only_what_the_image_copies():
    """``.dockerignore`` leaves out everything (the 7 GB .venv first), then lets in exactly what the
    Dockerfile copies, and the Dockerfile copies every package pyproject installs."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*"
    allowed = {pattern[1:] for pattern in patterns if pattern.startswith("!")}
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.update(line.split()[1:-1])
    assert allowed == copied
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {pattern.rstrip("*") for pattern in include} <= copied
    assert not any(pattern.startswith("!.venv") or pattern == "!*" for pattern in patterns)


def test_settings_reference_is_generated_from_the_settings_object():
    """``docs/settings.md`` is :func:`settings_markdown` (generated from ``Settings``), and every field says what it is."""
    from scraiber.settings_reference import REGENERATE, settings_markdown

    undescribed = sorted(name for name, field in Settings.model_fields.items() if not (field.description or "").strip())
    assert not undescribed, f"give these fields of scraiber/settings.py a description=: {undescribed}"
    reference = (ROOT / "docs" / "settings.md").read_text()
    assert reference == settings_markdown(), f"docs/settings.md is out of date: regenerate it with `{REGENERATE}`"
    undocumented = sorted(name for name in _aliases() | LIBRARY_VARIABLES if f"`{name}`" not in reference)
    assert not undocumented, f"docs/settings.md does not document: {undocumented}"


def test_dockerfile_installs_the_pinned_torch_pair_and_runs_the_backend():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "-c .ci/constraints.txt torch torchvision" in dockerfile
    assert 'CMD ["scraiber", "backend"' in dockerfile
    assert "USER scraiber" in dockerfile


def _compose_env(service: dict, **replace: str) -> dict[str, str]:
    return {**{k: str(v) for k, v in service["environment"].items()}, **replace}


@pytest.mark.slow
def test_mlflow_started_with_the_compose_command_answers_the_backend(compose, s3_server, postgres_url, tmp_path):
    """The compose's own MLflow command and environment (services replaced by the test's real SeaweedFS and
    PostgreSQL): the backend's Host header mlflow:5000 is served, a foreign one refused, and the
    database password is on no process's command line."""
    import sqlalchemy

    from scraiber.processes import ManagedProcess, free_port

    service = compose["services"]["mlflow"]
    command = service["command"].split() if isinstance(service["command"], str) else list(service["command"])
    if "--backend-store-uri" in command:  # on the command line, for all local users to read in the process list
        store_uri = command[command.index("--backend-store-uri") + 1]
    else:
        store_uri = service["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert store_uri.startswith(f"postgresql://scraiber:{REQUIRED['POSTGRES_PASSWORD']}@postgres:5432/")
    local_uri = store_uri.replace("postgres:5432", postgres_url.split("@", 1)[1].rsplit("/", 1)[0])  # trust auth
    if "--backend-store-uri" in command:
        command[command.index("--backend-store-uri") + 1] = local_uri
    with sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(sqlalchemy.text("CREATE DATABASE mlflow"))
    s3_server.make_bucket("scraiber")  # what the create-bucket service makes
    port = free_port()
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    command += ["--workers", "1"]
    env = _compose_env(
        service,
        MLFLOW_BACKEND_STORE_URI=local_uri,
        MLFLOW_S3_ENDPOINT_URL=s3_server.endpoint_url,
        AWS_ACCESS_KEY_ID=s3_server.access_key_id,
        AWS_SECRET_ACCESS_KEY=s3_server.secret_access_key,
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    ) | {"MLFLOW_TRACKING_URI": None}
    executable = Path(sys.executable).parent / command[0]
    with ManagedProcess(
        [str(executable), *command[1:]],
        log_path=tmp_path / "mlflow.log",
        env=env,
        cwd=tmp_path,
        ready=f"http://127.0.0.1:{port}/health",
        ready_timeout=180,
        name="mlflow (compose command)",
    ):
        search = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        as_backend = requests.get(search, headers={"Host": "mlflow:5000"}, timeout=30)
        assert as_backend.status_code == 200, as_backend.text
        assert requests.get(search, headers={"Host": "evil.example:5000"}, timeout=30).status_code == 403
        assert requests.get(search, headers={"Host": f"localhost:{port}"}, timeout=30).status_code == 200
        # the compose healthcheck itself (["CMD", "python", "-c", CODE]), pointed at this port
        _, program, flag, code = service["healthcheck"]["test"]
        assert (program, flag) == ("python", "-c")
        health = subprocess.run(
            [sys.executable, "-c", code.replace(":5000/", f":{port}/")], timeout=60, capture_output=True
        )
        assert health.returncode == 0, health.stderr
        password = REQUIRED["POSTGRES_PASSWORD"]
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                assert password not in (proc / "cmdline").read_bytes().decode(errors="replace"), f"pid {proc.name}"
            except OSError:
                continue


@pytest.mark.slow
def test_create_bucket_service_makes_the_bucket_once(compose, s3_server):
    service = compose["services"]["create-bucket"]
    env = _compose_env(service, AWS_ENDPOINT_URL_S3=s3_server.endpoint_url, AWS_ACCESS_KEY_ID=s3_server.access_key_id,
                       AWS_SECRET_ACCESS_KEY=s3_server.secret_access_key)  # fmt: skip
    program = [sys.executable, *service["entrypoint"][1:], *service["command"]]
    for _ in range(2):  # idempotent
        done = subprocess.run(program, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert done.returncode == 0 and "bucket scraiber ready" in done.stdout, done.stderr
    assert "scraiber" in [b["Name"] for b in s3_server.client().list_buckets()["Buckets"]]
