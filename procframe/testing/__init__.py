"""procframe's conformance kit: a pytest plugin and a suite any backend can be run against.

    pytest -p procframe.testing --procframe-backend NAME

runs the whole suite against backend ``NAME``.  A project can also load the
plugin (``-p procframe.testing``, or ``pytest_plugins`` in a root conftest) and
use the ``procframe_backend`` and ``ctx`` fixtures in tests of its own.

This package imports neither pytest nor the plugin itself: children of the
suite import its helpers (:mod:`procframe.testing.helpers`), and pytest loads
the plugin through ``pytest_plugins``.
"""

pytest_plugins = ["procframe.testing.plugin"]
