"""The OS process a Dask worker starts for a procframe Process: read it, run it, exit."""

from __future__ import annotations

import os
import sys


def main() -> None:
    data = sys.stdin.buffer.read()
    os.close(0)
    import cloudpickle

    from procframe._core import registry

    registry.adopt("dask")
    process = cloudpickle.loads(data)
    code = process._bootstrap()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
