"""A third-party backend found through a real entry point, in a distribution built without pip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from procframe.testing.helpers.scripts import HELLO_BOB

pytestmark = pytest.mark.one_python  # see pyproject.toml

TOY_SOURCE = Path(__file__).parent / "toy_backend" / "toy_backend.py"
MARKER_ENV = "TOY_BACKEND_MARKER"
BUILTIN = ("fork", "spawn", "forkserver")


def install(site: Path, module: str, entry_point: str, source: Path | str) -> None:
    """Lay out ``module`` and its ``.dist-info`` in ``site`` as an installer would."""
    site.mkdir(exist_ok=True)
    if isinstance(source, Path):
        shutil.copyfile(source, site / f"{module}.py")
    else:
        (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[procframe]\n{entry_point}\n", encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    install(site, "toy_backend", "toy = toy_backend:plugin", TOY_SOURCE)
    return site


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


def run(
    args: list[str], site: Path, cwd: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    environ.pop(MARKER_ENV, None)
    environ["PYTHONPATH"] = str(site)
    environ.update(env)
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_get_context_finds_the_entry_point(site: Path, workdir: Path) -> None:
    code = """\
import procframe
ctx = procframe.get_context("toy")
process = ctx.Process(target=print, args=("child ran",))
process.start()
process.join()
print(ctx.get_start_method(), process.exitcode, type(ctx.backend.plugin).__name__)
print("toy" in procframe.get_all_start_methods(), ctx.backend.description)
"""
    result = run(["-c", code], site, workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "child ran",
        "toy 0 ToyBackend",
        "True toy: a spawn backend from a third-party distribution",
    ]


def test_env_selects_the_toy_backend(site: Path, workdir: Path) -> None:
    (workdir / "hello.py").write_text(HELLO_BOB, encoding="utf-8")
    result = run(["hello.py"], site, workdir, PROCFRAME_BACKEND="toy")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello bob\n"


def test_child_bootstrap_observer_from_the_entry_point_fires_in_the_child(
    site: Path, workdir: Path
) -> None:
    marker = workdir / "marker"
    code = """\
import os
import procframe
process = procframe.Process(target=print, args=("child ran",), name="watched")
process.start()
process.join()
print(os.getpid(), process.pid, process.exitcode)
"""
    result = run(["-c", code], site, workdir, PROCFRAME_BACKEND="toy", **{MARKER_ENV: str(marker)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "child ran"
    parent_pid, child_pid, exitcode = lines[1].split()
    assert exitcode == "0"
    assert marker.read_text(encoding="utf-8").split() == [child_pid, "toy", "watched"]
    assert child_pid != parent_pid


def test_disabling_autoload_makes_toy_unknown(site: Path, workdir: Path) -> None:
    code = """\
import procframe
for ask in (lambda: procframe.get_context("toy"), procframe.get_context):
    try:
        ask()
    except ValueError as exc:
        print(exc)
    else:
        raise SystemExit("toy was found")
"""
    result = run(
        ["-c", code],
        site,
        workdir,
        PROCFRAME_BACKEND="toy",
        PROCFRAME_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    assert result.returncode == 0, result.stderr
    messages = result.stdout.splitlines()
    assert len(messages) == 2
    for message in messages:
        assert "'toy'" in message
        for name in BUILTIN:
            assert name in message


def test_info_json_lists_the_toy_backend(site: Path, workdir: Path) -> None:
    result = run(["-m", "procframe", "info", "--json"], site, workdir)
    assert result.returncode == 0, result.stderr
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert set(BUILTIN) | {"toy"} <= set(listed)
    toy = listed["toy"]
    assert "toy" in str(toy["plugin"]).lower()
    assert toy["available"] is True
    assert toy["default"] is False
    assert toy["capabilities"] == listed["spawn"]["capabilities"]
    assert toy["description"] == "toy: a spawn backend from a third-party distribution"


def run_kit_core(
    backends: list[str], site: Path, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """The conformance kit's core (``--procframe-core``) against ``backends``, verbosely."""
    args = ["-m", "pytest", "-p", "procframe.testing", "--procframe-core", "--timeout=120"]
    for name in backends:
        args += ["--procframe-backend", name]
    return run([*args, "-v", "-p", "no:cacheprovider"], site, cwd, timeout=300, **env)


@pytest.mark.timeout(360)
def test_conformance_suite_passes_against_the_toy_backend(site: Path, workdir: Path) -> None:
    # The core: the whole kit on a spawn subclass proves nothing the spawn runs do not.
    marker = workdir / "marker"
    result = run_kit_core(["toy"], site, workdir, **{MARKER_ENV: str(marker)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " passed" in output and "[toy" in output, output
    # The kit's children ran the bootstrap observer of the entry point.
    assert marker.read_text(encoding="utf-8").split()[1] == "toy"


PARTIAL_SOURCE = Path(__file__).parent / "toy_backend" / "partial_backend.py"
PARTIAL_LOG_ENV = "PARTIAL_BACKEND_LOG"


@pytest.mark.timeout(360)
def test_a_backend_that_overrides_only_the_queue_and_the_lock(
    tmp_path: Path, workdir: Path
) -> None:
    # Its own Queue and Lock, procframe's everything else (built from its context):
    # the kit's core passes, and the objects it made were the backend's own.
    site = tmp_path / "partial_site"
    install(site, "partial_backend", "partial = partial_backend:plugin", PARTIAL_SOURCE)
    log = workdir / "made"
    result = run_kit_core(["fork", "partial"], site, workdir, **{PARTIAL_LOG_ENV: str(log)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    made = {line.split()[0] for line in log.read_text(encoding="utf-8").splitlines()}
    assert made == {"Queue", "Lock"}
    # Overriding factories makes it an implementation of its own: the tests that stay in
    # one process ran on it as well as on fork, for the Lock and for the Queue.
    for test in ("test_acquire_and_release", "test_items_come_out_in_order"):
        kind = "Lock" if "acquire" in test else "Queue"
        for backend in ("fork", "partial"):
            assert f"{test}[{backend}-{kind}] PASSED" in output, output


def test_broken_entry_point_raises_plugin_load_error(tmp_path: Path, workdir: Path) -> None:
    site = tmp_path / "broken_site"
    install(
        site,
        "broken_backend",
        "broken = broken_backend:plugin",
        "raise ImportError('broken_backend needs a library that is not installed')\n",
    )
    code = """\
import procframe
from procframe.plugins import PluginLoadError
try:
    procframe.get_context("fork")
except PluginLoadError as exc:
    print(exc)
else:
    raise SystemExit("no PluginLoadError")
"""
    result = run(["-c", code], site, workdir)
    assert result.returncode == 0, result.stderr
    assert "'broken'" in result.stdout
    assert "broken_backend:plugin" in result.stdout
    assert "not installed" in result.stdout

    result = run(["-c", code], site, workdir, PROCFRAME_DISABLE_PLUGIN_AUTOLOAD="1")
    assert result.returncode == 1
    assert "no PluginLoadError" in result.stderr
