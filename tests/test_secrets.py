"""Secrets never reach the store or the screen; the store is private to its owner."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepflow.run.secrets import Masker, matching
from tests.conftest import StepflowRunner, py, query

SECRET = "s3cr3t-Value-42"


def test_mask_replaces_longest_first() -> None:
    m = Masker(["abcdef", "abc"])
    assert m.mask(b"x abcdef y abc z") == b"x *** y *** z"


def test_short_values_are_not_masks() -> None:
    assert not Masker(["ab", "", "  "])


def test_env_patterns_are_case_insensitive_globs() -> None:
    env = {"GITHUB_TOKEN": "t1", "db_password": "p", "PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "k"}
    assert set(matching(env, ("*TOKEN*", "*PASSWORD*", "*SECRET*"))) == {"GITHUB_TOKEN", "db_password", "AWS_SECRET_ACCESS_KEY"}


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=40))
def test_filter_catches_a_secret_split_across_reads(noise: bytes, cut: int) -> None:
    secret = SECRET.encode()
    data = noise + secret + noise
    m = Masker([SECRET])
    pieces = [data[i : i + cut] for i in range(0, len(data), cut)]
    out = b"".join(m.filter(1, p) for p in pieces) + m.flush(1)
    assert secret not in out
    assert out == m.mask(data)


def test_add_mask_line_hides_what_follows_in_the_same_chunk() -> None:
    m = Masker()
    out = m.filter(1, b"::add-mask::hunter22\nthe password is hunter22\n")
    assert b"the password is ***\n" in out and out.count(b"hunter22") == 0


def test_run_masks_env_secrets_everywhere(stepflow: StepflowRunner, db_path: Path) -> None:
    script = "echo STEP_START:deploy-$API_TOKEN; echo token=$API_TOKEN; echo ARTIFACT:/tmp/$API_TOKEN.txt; echo err $API_TOKEN >&2"
    result = stepflow("run", "-n", f"job {SECRET}", "--", "bash", "-c", script, env={"API_TOKEN": SECRET})
    assert SECRET.encode() not in result.stdout + result.stderr
    assert b"token=***\n" in result.stdout
    for table in ("executions", "steps", "artifacts", "logs"):
        for row in query(db_path, f"SELECT * FROM {table}"):
            assert SECRET not in repr(row), (table, row)
    shown = json.loads(stepflow("show", "last", "--json").stdout)
    assert shown["steps"][0]["name"] == "deploy-***"


def test_mask_flag_and_add_mask_command(stepflow: StepflowRunner, db_path: Path) -> None:
    script = "echo 'pw=opensesame'; echo '::add-mask::later-secret'; echo 'then later-secret'"
    result = stepflow("run", "--mask", "opensesame", "--", "bash", "-c", script)
    assert result.stdout == b"pw=***\n::add-mask::***\nthen ***\n"  # passed through, value hidden
    lines = [bytes(d) for (d,) in query(db_path, "SELECT data FROM logs ORDER BY first_line")]  # type: ignore[arg-type]
    assert b"\n".join(lines) == b"pw=***\nthen ***"


def test_environment_values_are_not_stored(stepflow: StepflowRunner, db_path: Path) -> None:
    stepflow("run", "--", "true", env={"MY_SETTING": "visible-value", "STEPFLOW_ENV_ALLOW": "MY_SETTING"})
    stepflow("run", "--", "true", env={"MY_SETTING": "visible-value"})
    envs = [json.loads(str(e)) for (e,) in query(db_path, "SELECT environment FROM executions ORDER BY created_ts")]
    assert envs[0]["MY_SETTING"] == "visible-value"
    assert envs[1]["MY_SETTING"] is None and "PATH" in envs[1]


@pytest.mark.parametrize("relative, mode", [(".", 0o700), ("database", 0o700), ("database/stepflow.db", 0o600)])
def test_store_files_are_private(stepflow: StepflowRunner, storage: Path, relative: str, mode: int) -> None:
    stepflow("run", "--cwd", str(storage.parent), "--", *py("open('a.txt','w').write('x'); print('ARTIFACT:a.txt')"))
    assert stat.S_IMODE((storage / relative).stat().st_mode) == mode
    (artifact,) = list((storage / "artifacts").rglob("*_a.txt"))
    assert stat.S_IMODE(artifact.stat().st_mode) == 0o600


@given(st.text(alphabet="AB_*", max_size=8), st.text(alphabet="AB_", max_size=10))
def test_glob_match_agrees_with_fnmatch(pattern: str, name: str) -> None:
    import fnmatch

    from stepflow.run.secrets import glob_match

    assert glob_match(name, pattern) == fnmatch.fnmatchcase(name, pattern)
