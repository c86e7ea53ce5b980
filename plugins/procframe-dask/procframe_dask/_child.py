"""The OS process a Dask worker starts for a procframe Process: read it, run it, exit."""

from __future__ import annotations

import os
import sys


def main() -> None:
    data = sys.stdin.buffer.read()
    os.close(0)
    import pickle

    import procframe
    from procframe.backends import inherit_logging

    procframe.set_backend("dask")  # its own children run on the cluster too
    process, logging = pickle.loads(data)  # what cloudpickle carried, it loads
    if logging is not None:
        inherit_logging(logging)
    code = process._bootstrap()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
