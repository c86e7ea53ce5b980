"""procframe's conformance kit: a pytest plugin and a suite any backend can be run against.

    pytest -p procframe.testing --procframe-backend NAME

runs the whole suite against backend ``NAME``.  A project can also load the
plugin (``-p procframe.testing``, or ``pytest_plugins`` in a root conftest) and
use the ``procframe_backend`` and ``ctx`` fixtures in tests of its own.
"""

from procframe.testing.plugin import (
    _procframe_no_leaks,
    ctx,
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_generate_tests,
    pytest_report_header,
)

__all__ = [
    "_procframe_no_leaks",
    "ctx",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_report_header",
]
