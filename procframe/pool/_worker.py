"""A pool worker: run the tasks that arrive on its socket, one at a time, and send each outcome.

Before a task runs, the worker claims it by reading its *ticket* (the task's
id) from a pipe the pool also reads: a task whose ticket the pool took back
first is skipped (it runs on another worker).  Then the worker writes the
task's id and start time to its slot in memory it shares with the pool, so
that when the worker dies the pool knows which task it was running (that one
failed) and which it never started (those go to another worker).  Outcomes
are sent as soon as each task ends.  The protocol is described in
:mod:`procframe.pool._process_core`.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import struct
import time
from pickle import HIGHEST_PROTOCOL, dumps, loads

from procframe._core import messages, osutil, reduction, serializing
from procframe.pool import _frames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def execute(kind: int, func: Any, rest: tuple[Any, ...]) -> Any:
    """Run one task: ``rest`` is (args, kwds) for APPLY, else (items,)."""
    if kind == _frames.APPLY:
        args, kwds = rest
        return func(*args, **kwds)
    (items,) = rest
    if kind == _frames.MAP:
        return list(map(func, items))
    return list(itertools.starmap(func, items))


def error_payload(message: str, error: BaseException | None, pickled: bytes | None) -> bytes:
    """(message, the formatted traceback of ``error``, the error's pickle) for the parent."""
    return dumps((message, _traceback(error), pickled), HIGHEST_PROTOCOL)


def encoding_payload(problem: BaseException, value: object, shown: BaseException | None) -> bytes:
    """What ``multiprocessing.pool.MaybeEncodingError`` holds: the reprs of the exception
    ``problem`` that pickling ``value`` raised and of ``value``; then the traceback of
    ``shown`` and the pickle of ``problem``, if it has one."""
    return dumps(
        (_safe_repr(problem), _safe_repr(value), _traceback(shown), _pickle_or_none(problem)),
        HIGHEST_PROTOCOL,
    )


def _traceback(error: BaseException | None) -> str:
    import traceback

    return "".join(traceback.format_exception(error)) if error is not None else ""


def _pickle_or_none(error: BaseException) -> bytes | None:
    try:
        return dumps(error, HIGHEST_PROTOCOL)
    except Exception:
        return None


_pickle: Any = reduction.dumps
"""The serializer's ``dumps`` for results and exceptions: the worker's (its pool's)."""
_functions: dict[bytes, Any] = {}
"""Functions pickled by name, unpickled once (a map sends the same one with every chunk)."""


def _unpickle_call(kind: int, payload: Any) -> tuple[int, Any, Any]:
    if kind & _frames.SLAB:  # the arguments first: loading them closes the slab's descriptor
        payload, fd = payload
        rest = messages.loads(fd)
    (length,) = _frames.FUNC_LENGTH.unpack_from(payload)
    start = _frames.FUNC_LENGTH.size
    view = memoryview(payload)
    pickled = bytes(view[start : start + length])
    if not kind & _frames.SLAB:
        rest = loads(view[start + length :])
    if kind & _frames.SAME_FUNC:
        func = _functions.get(pickled)
        if func is None:
            if len(_functions) > 256:
                _functions.clear()
            func = _functions[pickled] = loads(pickled)
    else:
        func = loads(pickled)
    return kind & ~(_frames.SAME_FUNC | _frames.SLAB), func, rest


def outcome(kind: int, payload: Any) -> tuple[int, bytes | messages.Outbound]:
    """The code and payload that report how the task in ``payload`` ended (a slab's
    payload: the code has :data:`~procframe.pool._frames.SLAB` added)."""
    try:
        kind, func, rest = _unpickle_call(kind, payload)
    except BaseException as e:
        message = f"the worker cannot unpickle the task: {type(e).__name__}: {e}"
        return _frames.BAD_TASK, error_payload(message, e, _pickle_or_none(e))
    try:
        result = execute(kind, func, rest)
    except Exception as e:
        return failure(e)
    except BaseException as e:  # SystemExit, KeyboardInterrupt: the task fails, not the worker
        message = f"the task raised {type(e).__name__}({', '.join(map(repr, e.args))})"
        return _frames.ABORTED, error_payload(message, e, _pickle_or_none(e))
    try:
        pickled = messages.dumps(result, _frames.INLINE_MAX, True, _pickle)
    except Exception as e:
        return _frames.UNPICKLABLE, encoding_payload(e, result, e)
    return (_frames.DONE if type(pickled) is bytes else _frames.DONE | _frames.SLAB), pickled


def failure(error: Exception) -> tuple[int, bytes]:
    """Report ``error``, pickled if it can be."""
    try:
        pickled = _pickle(error)
    except Exception as e:
        return _frames.UNPICKLABLE, encoding_payload(e, error, error)
    return _frames.TASK_RAISED, error_payload(_safe_repr(error), error, pickled)


def _safe_repr(obj: object) -> str:
    try:
        return repr(obj)
    except Exception:
        return f"<{type(obj).__qualname__} object (its repr failed)>"


def _send_slab(sock: socket.socket, header: bytes, slab: messages.Outbound) -> None:
    try:
        sent = sock.sendmsg([header], [osutil.rights(slab.fd)])
    finally:
        slab.close()  # the frame holds its own reference while in flight
    if sent < len(header):
        _send(sock.fileno(), header[sent:])


def _send(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main(
    conn: Any,
    slots: Any,
    index: int,
    initializer: Any,
    initargs: tuple[Any, ...],
    maxtasks: int | None,
    tickets: Any,
) -> None:
    """Serve tasks from ``conn`` until it closes or ``maxtasks`` are done.

    ``tickets`` is the read end of the pipe of the tasks' tickets (a connection).
    """
    global _pickle
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _pickle = serializing.default().dumps
    fd = conn.fileno()
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as e:
            try:
                pickled: bytes | None = dumps(e, HIGHEST_PROTOCOL)
            except Exception:
                pickled = None
            message = f"the pool's initializer raised {type(e).__qualname__}: {e}"
            _send(fd, _frames.frame(0, _frames.INIT_FAILED, error_payload(message, e, pickled)))
            return
    started = memoryview(slots).cast("B").cast("q")
    at = 2 * index
    started[at] = _frames.READY  # a worker that ends now is lost, not one that cannot start
    reader = _frames.FrameReader()
    sock = osutil.socket_from_fd(os.dup(fd), socket.AF_UNIX, socket.SOCK_STREAM)
    clock = time.monotonic_ns
    ticket_fd = tickets.fileno()
    os.set_blocking(ticket_fd, False)
    ticket_size = _frames.TICKET.size
    unpack_ticket = _frames.TICKET.unpack
    ticket = 0  # a ticket read for a later task, whose own tickets the pool took back
    done = 0
    while maxtasks is None or done < maxtasks:
        try:
            frames = reader.receive(sock)
        except ConnectionResetError:
            return
        if frames is None:
            return
        for task_id, kind, _, payload in frames:
            if not ticket:
                try:
                    (ticket,) = unpack_ticket(os.read(ticket_fd, ticket_size))
                except (BlockingIOError, struct.error):
                    _frames.close_slab(kind, payload)
                    continue  # taken back, as every task sent after it so far
            if ticket != task_id:
                _frames.close_slab(kind, payload)
                continue  # taken back: it runs elsewhere
            ticket = 0
            # The time before the id: the pool reads the id, then the time, and must
            # never pair this task's id with the start of an earlier one (it would
            # stop this task as overdue at once).
            started[at + 1] = start = clock()
            started[at] = task_id
            code, result = outcome(kind, payload)
            micros = (clock() - start) // 1000
            try:
                if type(result) is bytes:
                    _send(fd, _frames.frame(task_id, code, result, micros))
                else:
                    slab: Any = result
                    _send_slab(sock, _frames.frame(task_id, code, b"", micros), slab)
            except OSError:  # the pool is gone
                return
            done += 1
