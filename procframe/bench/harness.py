"""One benchmark measurement, in a fresh interpreter, for procframe or the standard library.

``python -m procframe.bench.harness --impl procframe|stdlib --case start_join
--method fork --iterations K`` runs the same code against ``import procframe as
mp`` or ``import multiprocessing as mp`` and prints one JSON line: the
per-iteration median and mean in seconds.

Children of spawn-style start methods re-import this file by path as
``__mp_main__``, as they would a user's script, so its top level imports
nothing but ``sys``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import ModuleType

    Case = Callable[[ModuleType, str, int], list[float]]

IMPLEMENTATIONS = ("procframe", "stdlib")


def noop() -> None:
    """The target of every started process: returns at once."""


def start_join(mp: ModuleType, method: str, iterations: int) -> list[float]:
    """Seconds per ``Process(target=noop)``, ``start()``, ``join()``, after one warm-up."""
    from time import perf_counter

    ctx = mp.get_context(method)
    p = ctx.Process(target=noop)
    p.start()
    p.join()
    samples = []
    for _ in range(iterations):
        began = perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        samples.append(perf_counter() - began)
        if p.exitcode != 0:
            raise RuntimeError(f"the benchmark's child exited with code {p.exitcode}")
    return samples


CASES: dict[str, Case] = {"start_join": start_join}


def import_implementation(impl: str) -> ModuleType:
    """``procframe`` or the standard library's ``multiprocessing``, by ``--impl`` name."""
    if impl == "stdlib":
        import multiprocessing

        return multiprocessing
    import procframe

    return procframe


def present_as_script() -> None:
    """Make children re-import ``__main__`` by file path, as they would a user's script.

    Re-imported by its module name, this file would pull the procframe package
    into every child of the standard library too, and bill it for the import.
    """
    sys.modules["__main__"].__spec__ = None


def summary(impl: str, case: str, method: str, samples: list[float]) -> dict[str, object]:
    """The JSON result of one run: per-iteration statistics, in seconds."""
    import statistics

    return {
        "impl": impl,
        "case": case,
        "method": method,
        "iterations": len(samples),
        "median": statistics.median(samples),
        "mean": statistics.fmean(samples),
        "min": min(samples),
        "multiprocessing_loaded": "multiprocessing" in sys.modules,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run one case and print its result as one JSON line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m procframe.bench.harness")
    parser.add_argument("--impl", choices=IMPLEMENTATIONS, required=True)
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--iterations", type=int, required=True)
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    mp = import_implementation(args.impl)
    if __name__ == "__main__":
        present_as_script()
    samples = CASES[args.case](mp, args.method, args.iterations)
    # Imported only now: every module loaded before the measurement makes each fork dearer.
    import json

    print(json.dumps(summary(args.impl, args.case, args.method, samples)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
