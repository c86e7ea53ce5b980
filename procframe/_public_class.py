"""The metaclass of the public classes of ``procframe.queues`` and ``procframe.synchronize``.

A public class (``procframe.queues.Queue``, ``procframe.synchronize.Lock``, ...)
stands for every backend's implementation of its name, as
``multiprocessing.queues.Queue`` does for the standard library's one:

* called itself, ``Queue(maxsize, ctx=ctx)`` is ``ctx.Queue(maxsize)``: the
  object comes from that context's factory, whatever its backend;
* ``isinstance(obj, Queue)`` holds for the object of every backend whose
  implementation is registered (the POSIX and threads ones are; a
  third-party backend calls ``procframe.queues.Queue.register(its_class)``);
* a subclass (``class MyQueue(procframe.queues.Queue)``) is a class of its
  own: it inherits the POSIX implementation (the public class's base) and
  builds it with the parts ``ctx`` makes, as ``multiprocessing``'s subclasses
  inherit its implementation.
"""

from __future__ import annotations

from procframe.context import Context, default_context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe._core.generic import T


class PublicClass(type):
    """A class whose calls go to a context's factory, and whose instances are every backend's.

    The public class itself declares ``_implementations`` (the classes it stands
    for) and ``_from_context`` (the factory call, with the class's signature);
    its subclasses declare neither and are ordinary classes.
    """

    _implementations: tuple[type, ...]

    # Typed as the class: what the factory returns is an instance of it (by
    # __instancecheck__), and its type for the type checker.
    def __call__(cls: type[T], *args: Any, **kwargs: Any) -> T:
        if "_implementations" in cls.__dict__:
            return cls._from_context(*args, **kwargs)  # type: ignore[attr-defined,no-any-return]
        return super().__call__(*args, **kwargs)  # type: ignore[misc,no-any-return]

    def __instancecheck__(cls, obj: object) -> bool:
        return type.__instancecheck__(cls, obj) or cls.__subclasscheck__(type(obj))

    def __subclasscheck__(cls, subclass: type) -> bool:
        if type.__subclasscheck__(cls, subclass):
            return True
        implementations = cls.__dict__.get("_implementations")
        return implementations is not None and issubclass(subclass, implementations)

    def register(cls, implementation: type) -> type:
        """Count instances of ``implementation`` (a backend's class) as instances of this class."""
        if "_implementations" not in cls.__dict__:
            raise TypeError(f"only the public class itself registers implementations, not {cls!r}")
        if not isinstance(implementation, type):
            raise TypeError(f"register() takes a class, not {implementation!r}")
        cls._implementations = (*cls._implementations, implementation)
        return implementation


def context_of(ctx: Context | None) -> Context:
    """``ctx``, checked; the default context when ``None``."""
    if ctx is None:
        return default_context
    if not isinstance(ctx, Context):
        raise TypeError(
            f"ctx must be a procframe context (procframe.get_context(...)), not {ctx!r}"
        )
    return ctx
