"""The typer application and what every command shares: the global options
(``--version``, ``--quiet``, ``--verbose``, ``--no-color``, shell completion),
config loading, one-line errors with exit codes, the consoles."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from crosswind.config import Config, load_config
from crosswind.errors import CrosswindError
from crosswind.secrets import CACHE, RedactingFilter, redact
from crosswind.version import crosswind_version

P = ParamSpec("P")
T = TypeVar("T")

app = typer.Typer(
    name="crosswind",
    help="Migrate Azure Blob + Tables to S3 + DocumentDB and keep both sides in sync.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # --install-completion / --show-completion; typer imports its completion code
    # either way, so this costs start-up nothing measurable.
    add_completion=True,
)
sync_app = typer.Typer(help="Copy what changed from one side to the other.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")

# Progress, summaries and tables go to stderr so that --json output on stdout
# stays clean; --quiet silences this console.
err = Console(stderr=True, highlight=False)
# One-line errors (``fail``): never silenced, also under --quiet.
problems = Console(stderr=True, highlight=False)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="TOML config file.", envvar="CROSSWIND_CONFIG")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the JSON report on stdout.")]

EXIT_INTERNAL = 70
EXIT_USAGE = 2

log = logging.getLogger("crosswind.cli")

#: values of CROSSWIND_QUIET / CROSSWIND_VERBOSE that mean "off"
_OFF = frozenset({"", "0", "false", "no", "off"})


@dataclass
class Output:
    """How much this invocation says; set by the global options before any command runs.

    * quiet: no progress bars or spinners, no summaries, tables or confirmations on
      stderr, logs at ERROR only; one-line ``error:`` messages and --json output on
      stdout still appear.
    * verbose: crosswind's INFO logs on stderr (SDK loggers stay at WARNING).

    Colour is the consoles' own setting: off when NO_COLOR is set to anything
    non-empty, or with --no-color.
    """

    quiet: bool = False
    verbose: bool = False


OUTPUT = Output()


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in _OFF


def setup_logging(verbose: bool, quiet: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING)
    # SDK loggers print request dumps at INFO; never let them near the terminal.
    for noisy in ("azure", "botocore", "aiobotocore", "urllib3", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def say_error(message: str) -> None:
    """One line ``error: ...`` on stderr, redacted; shown under --quiet too."""
    one_line = " ".join(redact(message).split())
    problems.print(f"[bold red]error:[/] {escape(one_line)}", markup=True, highlight=False,
                   soft_wrap=True)


def fail(message: str, code: int) -> typer.Exit:
    say_error(message)
    return typer.Exit(code)


def quiet_run_error(report: dict[str, Any]) -> None:
    """Under --quiet the summary, which shows the error that ended a run early, is
    silent: give that error its one line instead."""
    if OUTPUT.quiet and report.get("error"):
        say_error(str(report["error"]))


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"crosswind {crosswind_version()}\n")
        raise typer.Exit()


def _no_color_now(value: bool) -> None:
    # Eager, so that it runs before --help when it comes first: typer renders help
    # with a console of its own, which reads NO_COLOR when it is made.
    if value:
        os.environ["NO_COLOR"] = "1"


@app.callback()
def global_options(
    version: Annotated[bool, typer.Option(
        "--version", "-V", is_eager=True, callback=_print_version,
        help="Print crosswind's version and exit.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Only errors and --json output: no progress, summaries or "
        "tables. Also CROSSWIND_QUIET=1.")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Log what crosswind does (INFO) on stderr. Also "
        "CROSSWIND_VERBOSE=1.")] = False,
    no_color: Annotated[bool, typer.Option(
        "--no-color", is_eager=True, callback=_no_color_now,
        help="No colours, even on a terminal. Also NO_COLOR=1.")] = False,
) -> None:
    # A flag given on the command line beats the environment variable for the other.
    quiet_on = quiet or (not verbose and env_flag("CROSSWIND_QUIET"))
    verbose_on = verbose or (not quiet and env_flag("CROSSWIND_VERBOSE"))
    if quiet_on and verbose_on:
        raise fail("--quiet and --verbose exclude each other (check CROSSWIND_QUIET and "
                   "CROSSWIND_VERBOSE)", EXIT_USAGE)
    # Set on every invocation: the consoles outlive one call in tests (CliRunner).
    colour = not no_color and os.environ.get("NO_COLOR", "") == ""
    OUTPUT.quiet, OUTPUT.verbose = quiet_on, verbose_on
    err.quiet = quiet_on
    for console in (err, problems):
        console.no_color = not colour


def guarded(fn: Callable[P, T]) -> Callable[P, T]:
    """One-line errors, no tracebacks (unless CROSSWIND_DEBUG=1), exit codes by error."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        setup_logging(OUTPUT.verbose, OUTPUT.quiet)
        # A command resolves its secret references afresh (a process running several,
        # as in-process runs do, must not use an earlier command's values; within one,
        # the cache and its refresh on refusal apply).
        CACHE.reset()
        log.info("crosswind %s, Python %s: %s", crosswind_version(), sys.version.split()[0],
                 fn.__name__.removesuffix("_cmd").replace("_", " "))
        try:
            return fn(*args, **kwargs)
        except CrosswindError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except typer.BadParameter as exc:
            # A check of the options in a command's body (typer.BadParameter): a usage
            # error like the ones the parser itself reports, not an internal one.
            raise fail(exc.format_message(), EXIT_USAGE) from None
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
    from crosswind.secrets import configure

    cfg = load_config(path)
    configure(cfg)
    log.info("config %s, state directory %s", path.resolve(), cfg.state_dir)
    return cfg


def spinner(*, transient: bool = False) -> Progress:
    """A one-line spinner with a description and the elapsed time, on stderr."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    console=err, transient=transient)


@contextlib.asynccontextmanager
async def ticking(progress: Progress, refresh: Callable[[], None], enabled: bool
                  ) -> AsyncIterator[None]:
    """Show ``progress`` and call ``refresh`` (which only reads a run's counters)
    five times a second while the body runs; nothing at all off a terminal or
    under --quiet."""
    if not enabled or OUTPUT.quiet or not err.is_terminal:
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


def stamped(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``crosswind_version``: every JSON document the CLI writes says which
    crosswind made it. Report builders put it in themselves (reports are also kept in
    the state store); this covers listings and the smaller outputs."""
    if "crosswind_version" in doc:
        return doc
    return {**doc, "crosswind_version": crosswind_version()}


def write_report(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(redact(json.dumps(stamped(report), indent=2, default=str)) + "\n",
                   encoding="utf-8")
    tmp.replace(path)
    return path


def print_json(doc: dict[str, Any], *, stamp: bool = True) -> None:
    """``doc`` on stdout. ``stamp=False`` for a stored report shown again: it keeps the
    version that made it (or none, if older than the field) rather than today's."""
    out = stamped(doc) if stamp else doc
    sys.stdout.write(redact(json.dumps(out, indent=2, default=str)) + "\n")


def _status(code: object) -> int:
    """What ``sys.exit(code)`` would make the process exit with."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def main() -> None:
    """The ``crosswind`` script and ``python -m crosswind``."""
    try:
        # A fixed name, so that `python -m crosswind` and the `crosswind` script
        # complete through the same _CROSSWIND_COMPLETE variable.
        app(prog_name="crosswind")
        code = 0
    except SystemExit as exc:
        code = _status(exc.code)
    # obstore's Tokio worker threads are never shut down: when one is still busy while
    # the interpreter finalizes, it panics and the process dies with SIGABRT (exit 134)
    # after the command has finished, about one run in twelve against the emulators,
    # success or failure alike. Commands have closed or committed everything they wrote
    # by now, so run the exit handlers while the interpreter is whole, flush, and leave
    # without finalizing.
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`)
            stream.flush()
    os._exit(code)
