"""The hook specifications: the contract a procframe plugin or backend implements.

Import ``hookimpl`` from here (or ``procframe.hookimpl``).  Each spec, with
when it is called and what it returns, is documented in
:mod:`procframe._core.hookspecs`, where the code lives.
"""

from __future__ import annotations

from procframe._core.hookspecs import *  # noqa: F403
from procframe._core.hookspecs import __all__ as __all__
