"""The parts of ``cm`` below its commands: the config file, the poll timing, the HTTP client."""

import pytest

from container_manager.cli import config
from container_manager.cli.client import ApiError, Client, Unreachable
from container_manager.cli.follow import MAX_TRANSIENT_IN_A_ROW, Backoff, wait_for_end

TOKEN = "units-token-77"


def environ(tmp_path, **values):
    return {"HOME": str(tmp_path), **values}


def test_the_environment_wins_and_a_file_token_goes_only_to_its_own_url(tmp_path):
    path = config.config_path(environ(tmp_path))
    config.save(path, "default", "https://cm.example.com/cm/", "file-token")
    assert config.load(None, environ(tmp_path)) == config.Settings(
        "https://cm.example.com/cm/api/", "file-token"
    )
    same = environ(tmp_path, CM_URL="https://cm.example.com/cm/api")
    assert config.load(None, same).token == "file-token"
    other = environ(tmp_path, CM_URL="https://elsewhere.example.com/cm/")
    with pytest.raises(config.ConfigError, match="^token: set CM_TOKEN"):
        config.load(None, other)
    both = environ(tmp_path, CM_URL="https://elsewhere.example.com/", CM_TOKEN="env-token")
    assert config.load(None, both).token == "env-token"
    assert "file-token" not in repr(config.load(None, environ(tmp_path)))


def test_save_keeps_other_profiles_and_makes_the_file_private(tmp_path):
    path = tmp_path / "cm" / "config.toml"
    path.parent.mkdir()
    path.write_text('[other]\nurl = "https://a.example.com/"\ntoken = "a"\n')
    path.chmod(0o644)
    config.save(path, "default", "https://b.example.com/", 'b"\\token')
    assert path.stat().st_mode & 0o777 == 0o600
    tables = config.read(path)
    assert tables["other"]["token"] == "a" and tables["default"]["token"] == 'b"\\token'
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temporary left
    with pytest.raises(config.ConfigError, match="^profile: "):
        config.save(path, "bad name]", "https://b.example.com/", "b")


def test_a_broken_config_file_is_named_but_not_quoted(tmp_path):
    path = config.config_path(environ(tmp_path))
    path.parent.mkdir(parents=True)
    path.write_text('[default]\ntoken = "secret-in-file\n')
    with pytest.raises(config.ConfigError) as raised:
        config.load(None, environ(tmp_path))
    assert str(path) in str(raised.value) and "secret-in-file" not in str(raised.value)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon", "7200"])
def test_a_bad_poll_interval_is_named(value):
    with pytest.raises(config.ConfigError, match="^CM_POLL_INTERVAL: "):
        config.poll_intervals({"CM_POLL_INTERVAL": value})


class FlakyClient:
    """Answers ``failures`` in turn (exceptions to raise), then the job ``final``."""

    def __init__(self, failures, final):
        self.failures = list(failures)
        self.final = final

    def get(self, path, query=()):
        if self.failures:
            raise self.failures.pop(0)
        return self.final


def test_waiting_outlasts_a_busy_or_restarting_server_and_honours_retry_after():
    waits = []
    busy = ApiError(429, {"error": "quota"}, retry_after=7.0)
    client = FlakyClient(
        [busy, ApiError(503, {"error": "later"}), Unreachable("down")],
        {"id": "j", "status": "failed", "exit_code": 4},
    )
    seen = []
    job = wait_for_end(client, "j", Backoff(1.0, 2.0, sleep=waits.append), seen.append)
    assert job["exit_code"] == 4 and [j["status"] for j in seen] == ["failed"]
    assert waits == [7.0, 1.5, 2.0]  # Retry-After first, then the backoff


def test_waiting_gives_up_after_so_many_failures_in_a_row_and_at_once_on_a_404():
    down = [Unreachable("down")] * MAX_TRANSIENT_IN_A_ROW
    backoff = Backoff(1.0, 2.0, sleep=lambda seconds: None)
    with pytest.raises(Unreachable):
        wait_for_end(FlakyClient(down, None), "j", backoff, print)
    gone = FlakyClient([ApiError(404, {"error": "no job j"})], None)
    with pytest.raises(ApiError):
        wait_for_end(gone, "j", Backoff(1.0, 2.0, sleep=pytest.fail), print)


@pytest.mark.django_db(transaction=True)
def test_the_client_refuses_a_redirect_rather_than_carry_the_token(live_server, settings):
    settings.CONTAINER_MANAGER = {"API_TOKENS": [TOKEN]}
    client = Client(f"{live_server.url}/cm/api/", TOKEN)
    assert client.get("jobs/")["jobs"] == []
    with pytest.raises(ApiError) as raised:
        client.get("jobs")  # the API answers 308 to the path with its slash
    assert raised.value.status == 308
    assert "redirects to" in raised.value.body["error"]


def test_the_cli_imports_only_itself_and_the_standard_library():
    import ast
    import sys

    from benchmarks import import_graph

    edges = import_graph.graph(import_graph.ALL_KINDS)
    cli = {name for name in edges if name.split(".")[0] == "cli"}
    assert {"cli.main", "cli.client", "cli.config"} <= cli
    assert {target for name in cli for target in edges[name]} <= cli
    allowed = sys.stdlib_module_names | {"container_manager", "__future__"}
    for name in cli:
        for node in ast.walk(ast.parse(import_graph.modules()[name].read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, (name, roots)
