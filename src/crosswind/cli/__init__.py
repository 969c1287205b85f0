"""Command line: parse, call one core function, render. ``asyncio.run`` lives here only."""

from __future__ import annotations

from crosswind.cli import audit as _audit  # noqa: F401  (registers commands)
from crosswind.cli import cutover as _cutover  # noqa: F401  (registers commands)
from crosswind.cli import governance as _governance  # noqa: F401  (registers commands)
from crosswind.cli import loadtest as _loadtest  # noqa: F401  (registers commands)
from crosswind.cli import metadata as _metadata  # noqa: F401  (registers commands)
from crosswind.cli import monitoring as _monitoring  # noqa: F401  (registers commands)
from crosswind.cli import objects as _objects  # noqa: F401  (registers commands)
from crosswind.cli import package as _package  # noqa: F401  (registers commands)
from crosswind.cli import replicate as _replicate  # noqa: F401  (registers commands)
from crosswind.cli import switch as _switch  # noqa: F401  (registers commands)
from crosswind.cli import validate as _validate  # noqa: F401  (registers commands)
from crosswind.cli.app import app, main

__all__ = ["app", "main"]
