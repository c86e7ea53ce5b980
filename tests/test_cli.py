"""``python -m procframe info``: every declared backend, its capabilities, the default marked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import procframe.plugins
from procframe._core.registry import backends, platform_default
from procframe.cli import format_info, main

BUILTIN = ("fork", "spawn", "forkserver", "threads")
PLUGINS = {name: f"procframe.backends.{name}" for name in BUILTIN[:3]} | {
    "threads": "procframe.threads"
}
"""The plugin name of each built-in backend (the module that declares it)."""
JSON_KEYS = {"name", "plugin", "available", "reason", "capabilities", "default", "description"}


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "procframe", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def row_of(output: str, name: str) -> str:
    rows = [line for line in output.splitlines() if re.match(rf"^\*?\s+{name}\s", line)]
    assert len(rows) == 1, output
    return rows[0]


def test_info_lists_builtin_backends_with_their_capabilities() -> None:
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    for name in BUILTIN:
        row = row_of(result.stdout, name)
        assert PLUGINS[name] in row
        assert "available" in row
        assert ", ".join(sorted(backends()[name].capabilities)) in row


def test_info_marks_the_default_backend() -> None:
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    default = platform_default()
    for name in BUILTIN:
        assert row_of(result.stdout, name).startswith("*") == (name == default)
    assert f"default backend: {default} (the platform default)" in result.stdout


def test_info_json_has_the_documented_keys() -> None:
    result = run_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    records: list[dict[str, Any]] = json.loads(result.stdout)
    assert all(set(record) == JSON_KEYS for record in records)
    listed = {record["name"]: record for record in records}
    assert set(BUILTIN) <= set(listed)
    for name in BUILTIN:
        assert listed[name]["capabilities"] == sorted(backends()[name].capabilities)
        assert listed[name]["plugin"] == PLUGINS[name]
        assert listed[name]["available"] is True
    assert [r["name"] for r in records if r["default"]] == [platform_default()]


def test_info_default_follows_the_environment() -> None:
    result = run_cli("info", "--json", PROCFRAME_BACKEND="spawn")
    assert result.returncode == 0, result.stderr
    assert [r["name"] for r in json.loads(result.stdout) if r["default"]] == ["spawn"]


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
def test_info_unknown_backend_in_environment_fails(json_flag: tuple[str, ...]) -> None:
    result = run_cli("info", *json_flag, PROCFRAME_BACKEND="nope")
    assert result.returncode == 2
    assert "'nope'" in result.stderr
    for name in BUILTIN:
        assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert "*" not in result.stdout


def test_info_in_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROCFRAME_BACKEND", raising=False)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert row_of(out, platform_default()).startswith("*")


def test_format_info_shows_reason_distribution_and_no_capabilities(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(procframe._core.plugins._origins, "toy", "toy_backend 0.1")
    record = {
        "name": "toy",
        "plugin": "toy",
        "available": False,
        "reason": "needs a toy kernel",
        "capabilities": [],
        "default": False,
        "description": "",
    }
    row = row_of(format_info([record]), "toy")
    assert "toy (toy_backend 0.1)" in row
    assert "unavailable: needs a toy kernel" in row
    assert row.endswith("-")


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "info" in capsys.readouterr().err


def test_console_script() -> None:
    script = Path(sys.executable).parent / "procframe"
    if not script.exists():
        pytest.skip("the procframe console script is not installed next to this interpreter")
    result = subprocess.run(
        [str(script), "info", "--json"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert {r["name"] for r in json.loads(result.stdout)} >= set(BUILTIN)


def test_info_lists_the_serializers_and_marks_the_one_chosen() -> None:
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    for name in ("pickle", "cloudpickle", "dill"):
        assert "procframe.serializers" in row_of(result.stdout, name)
    assert row_of(result.stdout, "pickle").startswith("*")
    assert "default serializer: pickle (the default)" in result.stdout
    chosen = run_cli("info", PROCFRAME_SERIALIZER="dill")
    assert chosen.returncode == 0, chosen.stderr
    assert row_of(chosen.stdout, "dill").startswith("*")
    assert "default serializer: dill (from PROCFRAME_SERIALIZER)" in chosen.stdout


def test_info_names_an_unknown_serializer_of_the_environment() -> None:
    result = run_cli("info", PROCFRAME_SERIALIZER="nope")
    assert result.returncode == 2
    assert "unknown procframe serializer 'nope'" in result.stderr
    assert "cloudpickle, dill, pickle" in result.stderr
