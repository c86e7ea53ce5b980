"""The ``procframe`` command (``python -m procframe``): ``info`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``procframe info`` and ``procframe bench``."""
    from procframe.bench import command as bench

    parser = argparse.ArgumentParser(
        prog="procframe", description="procframe: multiprocessing on pluggable backends"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser(
        "info",
        help="list the declared backends and serializers",
        description="List the declared backends and serializers.",
    )
    info.add_argument("--json", action="store_true", help="print the backends as JSON")
    info.set_defaults(handler=run_info)
    bench_parser = commands.add_parser(
        "bench",
        help="compare procframe with the standard library's multiprocessing",
        description="Measure procframe and the standard library's multiprocessing side by "
        "side, each run in a fresh interpreter, and print procframe / multiprocessing ratios.",
    )
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(handler=bench.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except BrokenPipeError:  # the reader went away (``procframe info | head``)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lets the exit-time flush succeed
        return 1
    return status


def backend_records(default: str | None = None) -> list[dict[str, Any]]:
    """Every declared backend as plain data, ``default`` marked."""
    from procframe._core.registry import backends
    from procframe.plugins import get_plugin_manager

    pm = get_plugin_manager()
    return [
        {
            "name": name,
            "plugin": pm.get_name(info.plugin) or repr(info.plugin),
            "available": info.available,
            "reason": info.reason,
            "capabilities": sorted(info.capabilities),
            "default": name == default,
            "description": info.description,
        }
        for name, info in backends().items()
    ]


def default_source() -> str:
    """Where the default backend comes from, in words."""
    from procframe._core.registry import BACKEND_ENV

    if os.environ.get(BACKEND_ENV, "").strip():
        return f"from {BACKEND_ENV}"
    return "the platform default"


def format_info(records: Sequence[dict[str, Any]]) -> str:
    """The backends as an aligned table; ``*`` marks the default."""
    from procframe.bench.text import align
    from procframe.plugins import plugin_origin

    lines = [("", "backend", "plugin", "status", "capabilities")]
    for record in records:
        plugin = record["plugin"]
        origin = plugin_origin(plugin)
        if origin != "procframe":
            plugin = f"{plugin} ({origin})"
        status = "available" if record["available"] else f"unavailable: {record['reason']}"
        lines.append(
            (
                "*" if record["default"] else "",
                record["name"],
                plugin,
                status,
                ", ".join(record["capabilities"]) or "-",
            )
        )
    table = align(lines, "<<<<<", gap="  ")
    described = [
        r for r in records if r["description"] and plugin_origin(r["plugin"]) != "procframe"
    ]
    if described:  # a third party's backend: what it says of itself (its cluster, ...)
        table.append("")
        table.extend(f"   {r['name']}: {r['description']}" for r in described)
    default = next((record["name"] for record in records if record["default"]), None)
    if default is not None:
        table.append(f"\n* default backend: {default} ({default_source()})")
    return "\n".join(table)


def format_serializers() -> str:
    """The declared serializers as an aligned table; ``*`` marks the default."""
    from procframe._core.serializer_registry import SERIALIZER_ENV, chosen, default_name
    from procframe.bench.text import align
    from procframe.plugins import get_plugin_manager, plugin_origin
    from procframe.serializers import declared_serializers

    default = default_name()
    pm = get_plugin_manager()
    lines = [("", "serializer", "plugin", "status")]
    for name, info in declared_serializers().items():
        plugin = pm.get_name(info.plugin) or repr(info.plugin)
        origin = plugin_origin(plugin)
        if origin != "procframe":
            plugin = f"{plugin} ({origin})"
        status = "available"
        if not info.available:
            status = f"unavailable: {info.reason}" + (f" ({info.install})" if info.install else "")
        lines.append(("*" if name == default else "", name, plugin, status))
    table = align(lines, "<<<<", gap="  ")
    if chosen() is not None:
        source = "chosen in code"
    elif os.environ.get(SERIALIZER_ENV, "").strip():
        source = f"from {SERIALIZER_ENV}"
    else:
        source = "the default"
    table.append(f"\n* default serializer: {default} ({source})")
    return "\n".join(table)


def run_info(args: argparse.Namespace) -> int:
    """``procframe info``: 0, or 2 if the plugins or the default backend are broken.

    With an unknown default (``PROCFRAME_BACKEND``) the table is still printed,
    without a default, before the error.
    """
    from procframe._core.registry import default_backend_name
    from procframe.plugins import PluginLoadError

    try:
        records = backend_records()
    except (ValueError, TypeError, PluginLoadError) as exc:
        return fail(exc)
    try:
        default = default_backend_name()
    except ValueError as exc:
        if not args.json:
            print(format_info(records))
        return fail(exc)
    for record in records:
        record["default"] = record["name"] == default
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    print(format_info(records))
    try:
        print(f"\n{format_serializers()}")
    except (ValueError, TypeError) as exc:
        return fail(exc)
    return 0


def fail(error: Exception) -> int:
    """Print ``error`` for the user; return the exit status of a usage error."""
    print(f"procframe: error: {error}", file=sys.stderr)
    return 2
