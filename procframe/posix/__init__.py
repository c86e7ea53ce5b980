"""procframe's POSIX primitives, one plugin (:mod:`procframe.posix.plugin`) for every backend.

Semaphores and robust locks in shared memory, wait rooms, the queues'
channels, connections, the memfd heap under ``sharedctypes``, and shared
memory by name.  Built on :mod:`procframe._core` only; Linux first, with
fallbacks where another POSIX system lacks a piece.
"""
