"""``python -m procframe bench``: procframe side by side with the standard library.

Each table (:mod:`procframe.bench.tables`) is a set of rows; each row is
measured on both implementations by ``benchmarks/harness.py`` (in the source tree), run in a
fresh interpreter per measurement so that ``multiprocessing`` never shares a
process with procframe.  :mod:`procframe.bench.runner` runs them,
:mod:`procframe.bench.report` prints the ratios.
"""
