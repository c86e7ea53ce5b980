"""Log records that name the procframe process which made them.

``logging.LogRecord`` asks ``sys.modules["multiprocessing"]`` for the current
process's name, and procframe never imports that: every record would say
"MainProcess".  A child has a record factory put that name in, installed when
``logging`` is imported (at once if it was), so a child that never logs never
imports ``logging``.  Kept small: every spawned child imports this module.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is slow to import
if TYPE_CHECKING:
    import types
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from typing import Any

_current_process: Callable[[], Any] | None = None
_installed = False


def name_records_by_process(current_process: Callable[[], Any]) -> None:
    """Have log records carry ``current_process().name``, now or once ``logging`` is imported.

    Once per process (a forked child inherits what its parent did).
    """
    global _current_process
    if _current_process is None:
        _current_process = current_process
        logging = sys.modules.get("logging")
        if logging is not None and hasattr(logging, "setLogRecordFactory"):
            _install(logging)
        else:
            sys.meta_path.insert(0, _LoggingImportWatcher())


def _install(logging: Any) -> None:
    global _installed
    if _installed:
        return
    _installed = True
    make_record, current_process = logging.getLogRecordFactory(), _current_process

    def record_factory(*args: Any, **kwargs: Any) -> Any:
        record = make_record(*args, **kwargs)
        # logging's name when it finds no multiprocessing (None if logMultiprocessing is off)
        if record.processName == "MainProcess":
            record.processName = current_process().name  # type: ignore[misc]
        return record

    logging.setLogRecordFactory(record_factory)


class _LoggingImportWatcher:
    """A meta path finder for ``logging`` only: it has the next finders find the module,
    then loads it with that loader and installs the record factory.  The module gets its
    own loader back before it runs: nothing else sees this one."""

    _loader: Any = None

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != "logging":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = None if find_spec is None else find_spec(name, path, target)
            if spec is not None:
                if hasattr(spec.loader, "exec_module"):
                    self._loader, spec.loader = spec.loader, self
                return spec  # type: ignore[no-any-return]
        return None

    def create_module(self, spec: ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: types.ModuleType) -> None:
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _install(module)
