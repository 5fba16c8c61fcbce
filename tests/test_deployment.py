"""docker-compose.yml and the Dockerfile: valid offline and consistent with the settings object."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ml_backend.settings import Settings

ROOT = Path(__file__).parents[1]
REQUIRED = {
    "POSTGRES_PASSWORD": "pg-secret",
    "LABEL_STUDIO_PASSWORD": "ls-secret-123",
    "LABEL_STUDIO_API_KEY": "0123456789abcdef0123",
    "SCRAIBER_BASIC_AUTH_PASS": "backend-secret",
    "S3_ACCESS_KEY": "access",
    "S3_SECRET_KEY": "secret",
}
# read by libraries, not by the settings object (documented in README.md)
LIBRARY_VARIABLES = {"MLFLOW_S3_ENDPOINT_URL"}


def _config(env: dict[str, str]) -> subprocess.CompletedProcess:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose (Debian package) is missing: run `bash .ci/install --test`"
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    return subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        env={**clean, **env}, capture_output=True, text=True, timeout=60, cwd=ROOT,
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
        if name != "create-databases":
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


def test_label_studio_can_reach_only_the_docker_network(compose):
    environment = compose["services"]["label-studio"]["environment"]
    assert environment["ML_BLOCK_LOCAL_IP"] == "false"
    assert environment["USE_DEFAULT_BANNED_SUBNETS"] == "false"
    banned = environment["USER_ADDITIONAL_BANNED_SUBNETS"].split(",")
    assert "172.16.0.0/12" not in banned
    assert {"127.0.0.0/8", "169.254.0.0/16", "10.0.0.0/8", "192.168.0.0/16"} <= set(banned)


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    undocumented = sorted(name for name in _aliases() if f"`{name}`" not in readme)
    assert not undocumented, f"README.md does not document: {undocumented}"


def test_dockerfile_installs_the_pinned_torch_pair_and_runs_the_backend():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "-c .ci/constraints.txt torch torchvision" in dockerfile
    assert 'CMD ["scraiber", "backend"' in dockerfile
    assert "USER scraiber" in dockerfile
