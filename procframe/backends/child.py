"""The child side of a fresh-interpreter start: apply the preparation, then run the process.

Kept light on purpose: a spawned child imports this module first, and
nothing here imports pluggy unless a plugin must see the bootstrap.
"""

from __future__ import annotations

import _pickle  # pickle.py's own import of re would slow every spawned child
import io
import os
import sys
import types

from procframe._core import osutil, reduction, registry
from procframe._core.process import BaseProcess, current_process

TYPE_CHECKING = False  # typing is slow to import
if TYPE_CHECKING:
    from typing import Any

MAIN_ALIAS = "__mp_main__"


def spawn_main(payload_fd: int, sentinel_fd: int) -> None:
    """Entry point of a spawned interpreter: read the payload from ``payload_fd`` and run.

    ``sentinel_fd`` stays open until the process ends; the parent sees it close.
    """
    del sentinel_fd
    try:
        with open(payload_fd, "rb", closefd=True) as stream:
            process, prep = load(stream)
    except BaseException as exc:  # the child cannot start: say why, then fail
        _report_start_failure(exc)
        sys.exit(1)
    sys.exit(process._bootstrap(prep["bootstrap_hooks"]))


def run_payload(payload: bytes, os_parent_pid: int, fds: list[int]) -> int:
    """Run a process from an in-memory payload (a forked fork-server child); return its exit code.

    ``os_parent_pid`` is the fork server, whose death the child must not
    outlive; ``fds`` are the descriptors the parent sent along, as received.
    """
    try:
        process, prep = load(io.BytesIO(payload), os_parent_pid, fds)
    except BaseException as exc:
        _report_start_failure(exc)
        return 1
    return process._bootstrap(prep["bootstrap_hooks"])


def load(
    stream: io.BufferedIOBase | io.BytesIO,
    os_parent_pid: int | None = None,
    fds: list[int] | None = None,
) -> tuple[BaseProcess, dict[str, Any]]:
    """Read the preparation, apply it, then unpickle the process object."""
    prep = _pickle.load(stream)
    if os_parent_pid is not None:
        prep["os_parent_pid"] = os_parent_pid
    prepare(prep)
    reduction.set_received(prep["fds"] if fds is None else fds)
    buffers = None
    if "big_buffers" in prep:  # numpy arrays, memoryviews: out of band, in a slab
        from procframe._core import messages

        buffers = messages.open_buffers(reduction.import_fd(prep["big_buffers"]))
    process = _pickle.load(stream, buffers=buffers)
    return process, prep


def prepare(prep: dict[str, Any]) -> None:
    """Make this interpreter look like the parent: path, cwd, argv, backend, logger, main
    module."""
    os_parent = prep.get("os_parent_pid", prep["parent_pid"])
    osutil.arm_parent_death(prep["death_signal"], os_parent, prep["kernel_may_signal"])
    registry.adopt(prep["backend"])
    if "log" in prep:  # the parent configured procframe's logger
        from procframe._core import logsupport

        logsupport.inherit(prep["log"])
    sys.path[:] = prep["sys_path"]
    sys.argv[:] = prep["sys_argv"]
    try:
        os.chdir(prep["cwd"])
    except OSError:
        pass
    main = prep["main"]
    if main is not None:
        import_main(*main)


def import_main(kind: str, where: str) -> None:
    """Import the parent's main module as ``__mp_main__`` (its ``__main__`` guard stays shut).

    ``kind`` comes from :func:`procframe.backends.payload.main_module_spec`.  A
    package's ``__main__`` ("lazy_" kinds) is not run here: the module stays
    empty until something asks it for a name (unpickling a target defined
    there), which imports it then.
    """
    current = sys.modules.get(MAIN_ALIAS)
    if current is not None and getattr(current, "__procframe_main__", None) == (kind, where):
        sys.modules["__main__"] = current
        return
    module = types.ModuleType(MAIN_ALIAS)
    module.__dict__["__procframe_main__"] = (kind, where)
    if kind.startswith("lazy_"):
        module.__dict__["__getattr__"] = _import_on_first_use(module, kind[len("lazy_") :], where)
        sys.modules["__main__"] = sys.modules[MAIN_ALIAS] = module
        return
    previous_main = sys.modules.get("__main__")
    sys.modules["__main__"] = sys.modules[MAIN_ALIAS] = module
    try:
        _run_main(module, kind, where)
    except BaseException:
        sys.modules.pop(MAIN_ALIAS, None)
        if previous_main is not None:
            sys.modules["__main__"] = previous_main
        raise


def _run_main(module: types.ModuleType, kind: str, where: str) -> None:
    """Run the parent's main module (a module name or a file) in ``module``.

    Meanwhile this process may start no child (see
    :func:`procframe.backends.payload.check_not_importing_main`).
    """
    me = current_process()
    nested = getattr(me, "_inheriting", False)
    me._inheriting = True  # type: ignore[attr-defined]  # multiprocessing's name for it
    try:
        _run_main_code(module, kind, where)
    finally:
        if not nested:
            del me._inheriting  # type: ignore[attr-defined]


def _run_main_code(module: types.ModuleType, kind: str, where: str) -> None:
    if kind == "module":
        import importlib.util

        spec = importlib.util.find_spec(where)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot find the parent's main module {where!r}")
        module.__spec__ = spec
        module.__file__ = spec.origin
        module.__loader__ = spec.loader
        module.__package__ = spec.parent
        code = spec.loader.get_code(where)  # type: ignore[attr-defined]
    else:
        module.__file__ = where
        with open(where, "rb") as source:
            code = compile(source.read(), where, "exec")
    exec(code, module.__dict__)


def _import_on_first_use(module: types.ModuleType, kind: str, where: str) -> Any:
    """A module ``__getattr__`` that runs the main module when a name is asked of it."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):  # probes (hasattr(m, "__file__"))
            raise AttributeError(f"module {MAIN_ALIAS!r} has no attribute {name!r}")
        if module.__dict__.get("__getattr__") is __getattr__:
            del module.__dict__["__getattr__"]
            _run_main(module, kind, where)
        try:
            return module.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {MAIN_ALIAS!r} has no attribute {name!r}") from None

    return __getattr__


def _report_start_failure(exc: BaseException) -> None:
    import traceback

    sys.stderr.write(f"procframe: child process {os.getpid()} could not start:\n")
    traceback.print_exception(type(exc), exc, exc.__traceback__)
    sys.stderr.flush()
