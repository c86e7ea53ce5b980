"""procframe's logger: ``multiprocessing.util``'s, named ``procframe``.

Imported only once something asks for the logger (or for procframe.util):
:mod:`procframe._core.process` logs through it only if it is imported, since
nobody can have configured the logger otherwise.
"""

from __future__ import annotations

import _thread

TYPE_CHECKING = False  # typing is slow to import, and a spawned child imports this module
if TYPE_CHECKING:
    import logging

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
            # Its exit work logs "process shutting down", as multiprocessing's does.
            from procframe._core.process import install_exit_handler

            install_exit_handler()
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
