"""Which database: --database and STEPFLOW_DATABASE_URL, parsed, checked, never showing a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepflow.config import load_settings
from stepflow.errors import SettingsError, StoreError
from stepflow.store import open_store
from stepflow.store.url import mask_password, parse_url
from tests.conftest import StepflowRunner, query


@pytest.mark.parametrize(("text", "scheme", "path"), [
    ("/srv/x.db", "sqlite", "/srv/x.db"),
    ("rel/x.db", "sqlite", "rel/x.db"),
    ("sqlite:////srv/x.db", "sqlite", "/srv/x.db"),
    ("sqlite:///rel/x.db", "sqlite", "rel/x.db"),
    ("SQLITE:////srv/x.db", "sqlite", "/srv/x.db"),
    ("postgresql://u:pw@h/db", "postgresql", None),
    ("postgres://h/db", "postgresql", None),
    ("postgresql+psycopg://h/db", "postgresql", None),
    ("mysql://h/db", "mysql", None),
])
def test_parse_url(text: str, scheme: str, path: str | None) -> None:
    url = parse_url(text)
    assert (url.scheme, None if url.path is None else str(url.path)) == (scheme, path)


@pytest.mark.parametrize("text", ["", "  ", "sqlite://x.db", "sqlite:///"])
def test_parse_url_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_url(text)


@pytest.mark.parametrize(("text", "shown"), [
    ("postgresql://ann:s3cr%40t@db.example:5432/runs?sslmode=require",
     "postgresql://ann:***@db.example:5432/runs?sslmode=require"),
    ("postgresql://ann@db/runs", "postgresql://ann@db/runs"),
    ("postgresql://:pw@db/runs", "postgresql://:***@db/runs"),
    ("/plain/path@with-at.db", "/plain/path@with-at.db"),
    ("postgresql://ann:p@ss@[::1/runs", "postgresql://ann:***@[::1/runs"),  # not even a valid URL
])
def test_mask_password(text: str, shown: str) -> None:
    assert mask_password(text) == shown
    assert str(parse_url(text)) == shown if "://" in text else True


def test_settings_flag_beats_environment_and_paths_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"STEPFLOW_STORAGE_PATH": str(tmp_path / "s"), "STEPFLOW_DATABASE_URL": "sqlite:///from-env.db"}
    assert load_settings(env).database == tmp_path / "from-env.db"
    assert load_settings(env, database="flag.db").database == tmp_path / "flag.db"
    assert load_settings({"STEPFLOW_STORAGE_PATH": str(tmp_path / "s")}).database == (
        tmp_path / "s" / "database" / "stepflow.db")
    assert load_settings({**env, "STEPFLOW_DATABASE_URL": ""}).database == tmp_path / "s" / "database" / "stepflow.db"


@pytest.mark.parametrize(("env", "flag", "message"), [
    ({"STEPFLOW_DATABASE_URL": "sqlite://x.db"}, None,
     "STEPFLOW_DATABASE_URL='sqlite://x.db' is not sqlite:///PATH (three slashes, then the file)"),
    ({}, "", "--database='' is empty; give a file path or a URL such as sqlite:///PATH"),
    ({}, "mysql://root:hunter2@h/db",
     "--database='mysql://root:***@h/db': no backend for mysql:// (known: sqlite://, postgresql://, or a file path)"),
])
def test_bad_urls_are_refused_naming_the_setting(env: dict[str, str], flag: str | None, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env, database=flag)
    assert str(caught.value) == message


def test_an_unreachable_postgresql_is_a_clear_error_without_the_password(storage: Path, tmp_path: Path) -> None:
    # A Unix socket folder with no server in it: refused at once, no network involved.
    settings = load_settings(database=f"postgresql://ann:hunter2@/runs?host={tmp_path}&password=hunter2")
    with pytest.raises(StoreError) as caught:
        open_store(settings)
    message = str(caught.value)
    assert message.startswith("store postgresql://ann:***@/runs?host=") and "password=***" in message
    assert "hunter2" not in message and "\n" not in message


def test_cli_database_option_and_environment(stepflow: StepflowRunner, tmp_path: Path, storage: Path) -> None:
    db = tmp_path / "elsewhere" / "runs.db"
    done = stepflow("--database", f"sqlite:///{db}", "run", "-n", "flagged", "--", "true")
    assert done.returncode == 0, done.stderr
    assert query(db, "SELECT name FROM executions") == [("flagged",)]
    assert not (storage / "database" / "stepflow.db").exists()
    listed = stepflow("ls", "--json", env={"STEPFLOW_DATABASE_URL": str(db)})
    assert listed.returncode == 0 and b'"flagged"' in listed.stdout
    shown = stepflow("--database", str(db), "show", "last", "--json")
    assert shown.returncode == 0 and b'"flagged"' in shown.stdout


@pytest.mark.parametrize("args", [("ls",), ("run", "--", "true")])
def test_cli_errors_are_one_line_and_mask_the_password(stepflow: StepflowRunner, args: tuple[str, ...]) -> None:
    done = stepflow("--database", "postgresql://ann:hunter2@127.0.0.1:1/runs", *args)
    err = done.stderr.decode()
    assert b"hunter2" not in done.stderr + done.stdout
    if args[0] == "ls":
        assert done.returncode == 1
        assert err.startswith("stepflow: error: store postgresql://ann:***@127.0.0.1:1/runs: ")
        assert err.count("\n") == 1 and "Traceback" not in err
    else:
        assert done.returncode == 0  # the command comes first: it ran; recording could not
        assert "postgresql://ann:***@127.0.0.1:1/runs" in err and "Traceback" not in err


def test_cli_bad_database_setting_exits_2(stepflow: StepflowRunner) -> None:
    done = stepflow("ls", env={"STEPFLOW_DATABASE_URL": "sqlite://oops"})
    assert done.returncode == 2
    assert done.stderr.decode() == ("stepflow: error: STEPFLOW_DATABASE_URL='sqlite://oops' is not sqlite:///PATH"
                                    " (three slashes, then the file)\n")
