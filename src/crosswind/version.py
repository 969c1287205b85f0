"""The version of the installed crosswind, read from its package metadata, so
that pyproject.toml's ``[project] version`` is the only place it is written.
``crosswind --version`` prints it and every report carries it
(``crosswind_version``), so a report says which build produced it."""

from __future__ import annotations

import functools
from importlib import metadata

#: what a source tree that was never installed (no package metadata) reports
UNKNOWN_VERSION = "0+unknown"


@functools.cache
def crosswind_version() -> str:
    try:
        return metadata.version("crosswind")
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION
