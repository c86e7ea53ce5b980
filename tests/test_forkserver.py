"""What is particular to the fork server: preloading, and surviving the server's death."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import procframe
from procframe._core.process import service_pids
from procframe.testing.helpers import targets
from procframe.testing.helpers.scripts import run_script


def test_preloaded_modules_are_imported_once_by_the_server(tmp_path: Path) -> None:
    (tmp_path / "preloadme.py").write_text(
        "import os\nwith open('imports', 'a') as f:\n    f.write(f'{os.getpid()}\\n')\n"
    )
    result = run_script(
        tmp_path,
        """
        import sys
        import procframe
        from procframe._core.process import service_pids
        from procframe.testing.helpers import targets

        def loaded(path):
            targets.report(path, 'preloadme' in sys.modules)

        if __name__ == '__main__':
            procframe.set_forkserver_preload(['preloadme'])
            for i in range(2):
                p = procframe.Process(target=loaded, args=(f'child{i}',))
                p.start()
                p.join()
            (server,) = service_pids()  # the fork server is the one helper process
            targets.report('server', server)
            assert 'preloadme' not in sys.modules
        """,
        "forkserver",
    )
    assert result.returncode == 0, result.stderr
    server = targets.read_report(tmp_path / "server")
    assert (tmp_path / "imports").read_text().split() == [str(server)]
    assert targets.read_report(tmp_path / "child0") is True
    assert targets.read_report(tmp_path / "child1") is True


def test_bad_preload_list_is_refused() -> None:
    import pytest

    with pytest.raises(TypeError, match="list of module names"):
        procframe.set_forkserver_preload("preloadme")  # type: ignore[arg-type]


def test_a_dead_server_is_replaced(tmp_path: Path) -> None:
    ctx = procframe.get_context("forkserver")
    first = ctx.Process(target=targets.noop)
    first.start()
    first.join(60)
    (old,) = service_pids()  # the fork server is the one helper process
    os.kill(old, signal.SIGKILL)  # no wait: the next start may still see it dying
    out = tmp_path / "out"
    second = ctx.Process(target=targets.write_marker, args=(str(out),))
    second.start()
    second.join(60)
    assert second.exitcode == 0
    assert out.read_text() == str(second.pid)
    (new,) = service_pids()
    assert new != old
