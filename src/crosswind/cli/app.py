"""The typer application and what every command shares: config loading,
one-line errors with exit codes, the console."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from crosswind.config import Config, load_config
from crosswind.errors import CrosswindError
from crosswind.secrets import RedactingFilter, redact

P = ParamSpec("P")
T = TypeVar("T")

app = typer.Typer(
    name="crosswind",
    help="Migrate Azure Blob + Tables to S3 + DocumentDB and keep both sides in sync.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sync_app = typer.Typer(help="Copy what changed from one side to the other.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")

# Progress and tables go to stderr so that --json output on stdout stays clean.
err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="TOML config file.", envvar="CROSSWIND_CONFIG")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the JSON report on stdout.")]

EXIT_INTERNAL = 70


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # SDK loggers print request dumps at INFO; never let them near the terminal.
    for noisy in ("azure", "botocore", "aiobotocore", "urllib3", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str, code: int) -> typer.Exit:
    one_line = " ".join(redact(message).split())
    err.print(f"[bold red]error:[/] {escape(one_line)}", markup=True, highlight=False,
              soft_wrap=True)
    return typer.Exit(code)


def guarded(fn: Callable[P, T]) -> Callable[P, T]:
    """One-line errors, no tracebacks (unless CROSSWIND_DEBUG=1), exit codes by error."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        setup_logging(bool(os.environ.get("CROSSWIND_VERBOSE")))
        try:
            return fn(*args, **kwargs)
        except CrosswindError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("CROSSWIND_DEBUG"):
                raise
            raise fail(
                f"internal error {type(exc).__name__}: {exc} (set CROSSWIND_DEBUG=1 for a "
                "traceback)",
                EXIT_INTERNAL,
            ) from None

    return wrapper


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def load(path: Path) -> Config:
    return load_config(path)


def spinner(*, transient: bool = False) -> Progress:
    """A one-line spinner with a description and the elapsed time, on stderr."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    console=err, transient=transient)


@contextlib.asynccontextmanager
async def ticking(progress: Progress, refresh: Callable[[], None], enabled: bool
                  ) -> AsyncIterator[None]:
    """Show ``progress`` and call ``refresh`` (which only reads a run's counters)
    five times a second while the body runs; nothing at all off a terminal."""
    if not enabled or not err.is_terminal:
        yield
        return

    async def ticker() -> None:
        while True:
            refresh()
            await asyncio.sleep(0.2)

    with progress:
        task = asyncio.create_task(ticker())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            refresh()


def write_report(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(redact(json.dumps(report, indent=2, default=str)) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def print_json(report: dict[str, Any]) -> None:
    sys.stdout.write(redact(json.dumps(report, indent=2, default=str)) + "\n")


def main() -> None:
    app()
