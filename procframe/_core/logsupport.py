"""procframe's logger (``multiprocessing.util``'s), and log records named by process.

``logging.LogRecord`` names a record's process after
``sys.modules["multiprocessing"].current_process()``, which procframe never
imports: every record would say "MainProcess".  A new child therefore has a
record factory installed (:func:`name_records_by_process`) that puts the
name of the current process in place of that default, as soon as ``logging``
is imported, and not before: a child that does not log never imports
``logging``.

Kept light: a spawned child imports this module, and ``logging`` only when
the program uses it.
"""

from __future__ import annotations

import _thread
import sys

TYPE_CHECKING = False  # typing is slow to import, and a spawned child imports this module
if TYPE_CHECKING:
    import logging
    import types
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from typing import Any

__all__ = [
    "DEBUG",
    "DEFAULT_LOGGING_FORMAT",
    "INFO",
    "LOGGER_NAME",
    "NOTSET",
    "SUBDEBUG",
    "SUBWARNING",
    "debug",
    "get_logger",
    "info",
    "log_to_stderr",
    "name_records_by_process",
    "sub_debug",
    "sub_warning",
]

NOTSET = 0
SUBDEBUG = 5
DEBUG = 10
INFO = 20
SUBWARNING = 25

LOGGER_NAME = "procframe"
DEFAULT_LOGGING_FORMAT = "[%(levelname)s/%(processName)s] %(message)s"

_logger: logging.Logger | None = None
_log_to_stderr = False
_lock = _thread.RLock()


def sub_debug(msg: str, *args: object) -> None:
    """Log ``msg`` at level SUBDEBUG, if the logger was asked for."""
    if _logger is not None:
        _logger.log(SUBDEBUG, msg, *args)


def debug(msg: str, *args: object) -> None:
    """Log ``msg`` at level DEBUG, if the logger was asked for."""
    if _logger is not None:
        _logger.log(DEBUG, msg, *args)


def info(msg: str, *args: object) -> None:
    """Log ``msg`` at level INFO, if the logger was asked for."""
    if _logger is not None:
        _logger.log(INFO, msg, *args)


def sub_warning(msg: str, *args: object) -> None:
    """Log ``msg`` at level SUBWARNING, if the logger was asked for."""
    if _logger is not None:
        _logger.log(SUBWARNING, msg, *args)


def get_logger() -> logging.Logger:
    """procframe's logger (named ``procframe``, not propagating), made on first use."""
    global _logger
    import logging

    with _lock:
        if _logger is None:
            logger = logging.getLogger(LOGGER_NAME)
            logger.propagate = False
            for level, name in ((SUBDEBUG, "SUBDEBUG"), (SUBWARNING, "SUBWARNING")):
                if logging.getLevelName(level) == f"Level {level}":
                    logging.addLevelName(level, name)
            # procframe's exit work logs: have it run before logging's own shutdown.
            from procframe._core.process import reregister_exit_handler

            reregister_exit_handler()
            _logger = logger
    return _logger


def log_to_stderr(level: int | str | None = None) -> logging.Logger:
    """Add a handler printing procframe's log records to stderr; set ``level`` if given."""
    global _log_to_stderr
    import logging

    logger = get_logger()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(DEFAULT_LOGGING_FORMAT))
    logger.addHandler(handler)
    if level:
        logger.setLevel(level)
    _log_to_stderr = True
    return logger


def inherited_settings() -> tuple[int, bool] | None:
    """What a fresh-interpreter child takes from its parent's logger, if it was configured."""
    if _logger is None:
        return None
    return _logger.getEffectiveLevel(), _log_to_stderr


def inherit(settings: tuple[int, bool]) -> None:
    """Configure this child's logger as its parent's was (see :func:`inherited_settings`)."""
    level, to_stderr = settings
    if to_stderr:
        log_to_stderr()
    get_logger().setLevel(level)


# -- records named by process ---------------------------------------------------------

_current_process: Callable[[], Any] | None = None
_factory_installed = False


def name_records_by_process(current_process: Callable[[], Any]) -> None:
    """Have log records carry ``current_process().name``: now if ``logging`` is imported,
    else once it is.  Cheap, and at most once per process."""
    global _current_process
    if _current_process is not None:  # done already (in this process, or before a fork)
        return
    _current_process = current_process
    logging = sys.modules.get("logging")
    if logging is not None and hasattr(logging, "setLogRecordFactory"):
        _install_record_factory(logging)
    else:
        sys.meta_path.insert(0, _LoggingImportWatcher())


def _install_record_factory(logging: Any) -> None:
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        _factory_installed = True
        make_record = logging.getLogRecordFactory()
        current_process = _current_process
        assert current_process is not None

        def record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            # logging's default when it finds no multiprocessing module; None when
            # logging.logMultiprocessing is off (left alone).
            if record.processName == "MainProcess":
                record.processName = current_process().name
            return record

        logging.setLogRecordFactory(record_factory)


class _LoggingImportWatcher:
    """A meta path finder that sees ``logging`` imported and names its records then.

    It finds nothing itself: it lets the next finders find ``logging`` and has
    the module's loader install the record factory once the module has run.
    """

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != "logging":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        spec: ModuleSpec | None = None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = None if find_spec is None else find_spec(name, path, target)
            if spec is not None:
                break
        if spec is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ThenNameRecords(spec.loader)  # type: ignore[assignment]
        return spec


class _ThenNameRecords:
    """The loader of ``logging``, which installs the record factory after running it.

    It gives the module back its own loader before running it: nothing else
    sees this wrapper.
    """

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self._loader
        self._loader.exec_module(module)
        _install_record_factory(module)
