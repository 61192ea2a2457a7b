"""The container files in deploy/: Docker cannot run on these machines, so the compose file is
checked by a YAML parser against what the deployment needs, and the nginx configuration and the
Dockerfile by what they must say. The entry point is run directly
(tests/deploy/test_entrypoint.py)."""

import re
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def test_compose_runs_every_process_the_application_needs(services):
    assert {"postgres", "redis", "migrate", "web", "worker", "beat", "proxy"} <= set(services)
    assert services["web"]["deploy"]["replicas"] >= 2
    assert services["worker"]["deploy"]["replicas"] >= 1
    assert services["beat"]["deploy"]["replicas"] == 1  # two would queue every job twice


def test_the_app_services_run_the_entrypoint_modes_of_one_image(services):
    for mode in ("migrate", "web", "worker", "beat"):
        service = services[mode]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["command"][0] == mode
        assert service["env_file"][0]["path"] == ".env"
        assert service["environment"]["DEBUG"] == "false"
        assert service["environment"]["DATABASE_URL"].startswith("postgres://")
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:")


def test_the_workers_yield_the_cpu_to_the_web_replicas(services):
    """Docker's default CPU weight is 1024; the worker's is lower, so the pipeline does not
    queue the participants' requests on a busy host."""
    assert services["web"].get("cpu_shares", 1024) == 1024
    assert services["worker"]["cpu_shares"] < 1024


def test_every_long_running_service_has_a_health_check(services):
    for name, service in services.items():
        if name == "migrate":
            continue
        test = service["healthcheck"]["test"]
        assert test and test[0] in {"CMD", "CMD-SHELL"}, name
    assert services["web"]["healthcheck"]["test"][-2:] == ["health", "web"]
    assert services["worker"]["healthcheck"]["test"][-2:] == ["health", "worker"]
    assert services["beat"]["healthcheck"]["test"][-2:] == ["health", "beat"]


def test_services_start_only_when_what_they_need_is_ready(services):
    for name in ("web", "worker", "beat"):
        needs = services[name]["depends_on"]
        assert needs["postgres"]["condition"] == "service_healthy", name
        assert needs["redis"]["condition"] == "service_healthy", name
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_the_proxy_uses_the_nginx_config_of_this_folder(services):
    mounts = services["proxy"]["volumes"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in mounts
    assert (DEPLOY / "nginx.conf").is_file()


def nginx_directives(block_start: str) -> str:
    text = (DEPLOY / "nginx.conf").read_text()
    text = re.sub(r"#.*", "", text)  # comments say nothing
    start = text.index(block_start)
    return text[start:]


def test_the_proxy_passes_websockets_with_the_upgrade_headers():
    https = nginx_directives("listen 443 ssl")
    assert "proxy_pass http://web;" in https
    assert "proxy_http_version 1.1;" in https
    assert "proxy_set_header Upgrade $http_upgrade;" in https
    assert "proxy_set_header Connection $connection_upgrade;" in https
    conf = nginx_directives("http {")
    assert re.search(r"map \$http_upgrade \$connection_upgrade \{[^}]*default upgrade;", conf)


def test_the_proxy_overwrites_the_forwarded_headers_the_app_trusts():
    https = nginx_directives("listen 443 ssl")
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in https
    # Set to the peer's address, not appended to what a client may have forged.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in https
    assert "proxy_buffering off;" in https  # streamed replies are not held back


def test_the_image_is_slim_runs_as_a_user_and_installs_exactly_the_lock_file():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if not line.startswith("#")]
    text = "\n".join(instructions)
    assert re.search(r"^FROM python:3\.11-slim", text, flags=re.MULTILINE)
    assert "--require-hashes" in text and "requirements/base.txt" in text
    assert "collectstatic" in text
    assert re.search(r"^USER app$", text, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["/app/deploy/entrypoint.sh"]' in text
    assert re.search(r"^HEALTHCHECK .*\n?.*health", text, flags=re.MULTILINE)
    # USER comes after the installs (which need root) and before the entry point.
    assert text.index("USER app") > text.index("pip install")
    assert text.index("USER app") < text.index("ENTRYPOINT")


def test_the_image_leaves_out_local_state_and_secrets():
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".git", ".venv", "var", "deploy/.env", "deploy/certs"} <= set(ignored)
