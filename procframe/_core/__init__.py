"""The bottom layer: what every other part of procframe, and every backend, stands on.

The process model (:mod:`.process`), the backend contract (:mod:`.backend`),
errors, argument checks, hook specs and the plugin manager, the registry of
backends and the hook calls bound to one (:mod:`.registry`), descriptor
passing (:mod:`.reduction`) and small OS helpers.  Nothing here imports a
backend or anything above this package.
"""
