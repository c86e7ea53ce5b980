"""What a parent sends a child that starts as a fresh interpreter (spawn, forkserver).

Two pickles in one stream: the *preparation* (plain data: sys.path, the main
module, the backend name, ...) that the child applies before it can unpickle
the second, the Process object, whose target may live in ``__main__``.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys

from procframe._core import logsupport, osutil, reduction, registry
from procframe._core.errors import ProcessPicklingError
from procframe._core.process import BaseProcess, current_process, spawning_payload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_LENGTH = struct.Struct("!Q")


def main_module_spec() -> tuple[str, str] | None:
    """How a child re-imports the parent's ``__main__``: (kind, where), or None.

    ``kind`` is "module" (``where`` a module name) or "path" (a file); with a
    "lazy_" prefix when the main module is a package's, a directory's or a zip's
    ``__main__`` (``python -m pkg``).  CPython's spawn never runs such a module
    again (``multiprocessing.spawn._fixup_main_from_name``): its body runs
    unconditionally, the program's work and not definitions.  A procframe child
    imports it only if it needs a name from it (a target defined there).
    """
    main = sys.modules.get("__main__")
    if main is None:
        return None
    spec = getattr(main, "__spec__", None)
    name = spec.name if spec is not None and spec.name else None
    package_main = name is not None and (name == "__main__" or name.endswith(".__main__"))
    if name is not None and name != "__main__":
        return ("lazy_module" if package_main else "module", name)
    path = getattr(main, "__file__", None)
    if not path or not os.path.isfile(path):  # interactive, -c, or stdin: nothing to re-import
        return None
    return ("lazy_path" if package_main else "path", os.path.abspath(path))


NOT_BOOTSTRAPPED = """
        An attempt has been made to start a new process before the
        current process has finished its bootstrapping phase.

        This probably means that you are not using fork to start your
        child processes and you have forgotten to use the proper idiom
        in the main module:

            if __name__ == '__main__':
                freeze_support()
                ...

        The "freeze_support()" line can be omitted if the program
        is not going to be frozen to produce an executable.

        (This process is importing the main module of its parent, as children
        of the spawn and forkserver backends do, and that module started a
        process: without the guard above, every child would start another.)
        """


def check_not_importing_main() -> None:
    """Refuse to start a child while this process imports its parent's main module.

    A main module without the ``if __name__ == '__main__':`` guard would
    otherwise have every fresh-interpreter child start another, without end.
    """
    if getattr(current_process(), "_inheriting", False):
        raise RuntimeError(NOT_BOOTSTRAPPED)


def preparation(process: BaseProcess, backend: str) -> dict[str, Any]:
    """The plain-data first part of the payload."""
    prep: dict[str, Any] = {
        "backend": backend,
        "sys_path": list(sys.path),
        "sys_argv": list(sys.argv),
        "cwd": os.getcwd(),
        "main": main_module_spec(),
        "parent_pid": os.getpid(),
        "death_signal": osutil.death_signal(process.daemon),
        "kernel_may_signal": osutil.launched_from_main_thread(),
        # Without observers the child need not load the plugins (pluggy, entry points).
        "bootstrap_hooks": registry.bootstrap_observed(backend),
    }
    log = logsupport.inherited_settings()
    if log is not None:  # only when the program configured procframe's logger
        prep["log"] = log
    return prep


def encode(
    process: BaseProcess, backend: str, kernel_may_signal: bool | None = None
) -> tuple[bytes, list[int], Any]:
    """Pickle the payload for ``process``: the bytes, the descriptors that must reach the
    child with them, and what holds those descriptors open until the launch is done.
    Raise :class:`ProcessPicklingError` naming what fails.

    The descriptors of Pipe ends, queues and locks among the arguments are
    collected (:mod:`procframe._core.reduction`); the launcher must pass them on.
    Big buffers among them (numpy arrays, memoryviews) travel out of band, in a
    slab (:mod:`procframe._core.messages`) whose descriptor is one of those.
    Refused (``RuntimeError``) while this process imports its parent's main module.
    """
    check_not_importing_main()
    from procframe._core import messages, serializing

    serializer = serializing.get(process._serializer_name())
    buffers = messages.BigBuffers()
    slab = None
    args = getattr(process, "_args", ())
    lifted = messages.lift_big_buffers(args, 2)
    try:
        serializer.dumps_for_fresh_child(getattr(process, "_target", None))
        if lifted is not None:  # big bytes, non-contiguous arrays: out of band too
            process._args = lifted
        with spawning_payload(), reduction.collecting_fds() as fds:
            pickled_process = serializer.dumps(process, buffers)
            if buffers:
                slab = messages.pack_buffers(buffers)
                big_buffers = reduction.export_fd(slab.fd, "the big buffers of the arguments")
    except Exception as exc:
        raise _explain(process, backend, exc, serializer) from exc
    finally:
        if lifted is not None:
            process._args = args
    prep = preparation(process, backend)
    prep["fds"] = list(fds)
    if slab is not None:
        prep["big_buffers"] = big_buffers
    if kernel_may_signal is not None:
        prep["kernel_may_signal"] = kernel_may_signal
    return pickle.dumps(prep, protocol=pickle.HIGHEST_PROTOCOL) + pickled_process, fds, slab


def _explain(
    process: BaseProcess, backend: str, exc: Exception, serializer: Any
) -> ProcessPicklingError:
    culprit, refused = "the process object", None
    parts: list[tuple[str, object]] = [("target", getattr(process, "_target", None))]
    parts += [(f"args[{i}]", arg) for i, arg in enumerate(getattr(process, "_args", ()))]
    parts += [(f"kwargs[{k!r}]", v) for k, v in getattr(process, "_kwargs", {}).items()]
    with spawning_payload(), reduction.collecting_fds(), reduction.probing():
        for label, value in parts:
            try:
                serializer.dumps_for_fresh_child(value)
            except Exception:
                culprit, refused = f"its {label} ({osutil.short_repr(value)})", (value,)
                break
    error = ProcessPicklingError(
        f"process {process.name!r} cannot start under the {backend!r} backend: {culprit} "
        f"cannot be pickled by the {serializer.name!r} serializer ({type(exc).__name__}: "
        f"{exc}). Backends that start a fresh interpreter send the target and its arguments "
        "by pickle: define the target at module level and pass picklable arguments, choose "
        "a serializer that carries it, or use a backend whose children inherit the "
        "parent's memory (fork)"
    )
    if refused is not None:
        from procframe._core.serializing import explained

        explained(error, refused[0], serializer.name)
    return error


def frame(data: bytes) -> bytes:
    """``data`` with its length in front, for a stream that carries several messages."""
    return _LENGTH.pack(len(data)) + data


def read_frame(fd: int) -> bytes:
    """Read one message written with :func:`frame`."""
    (size,) = _LENGTH.unpack(osutil.read_exactly(fd, _LENGTH.size))
    return osutil.read_exactly(fd, size)
