"""`crosswind package lambda|azure-function`: the serverless deployments' packages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from crosswind.cli.app import JsonOpt, app, err, guarded, print_json

package_app = typer.Typer(help="Build the serverless packages (AWS Lambda zip, Azure "
                          "Function app folder) and their infrastructure templates.",
                          no_args_is_help=True)
app.add_typer(package_app, name="package")

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Directory to write into.")]
AddOpt = Annotated[list[Path] | None, typer.Option(
    "--add", help="A file to put at the package's root (e.g. the DocumentDB CA bundle "
    "global-bundle.pem, or the config file). Repeatable.")]
CacheOpt = Annotated[Path | None, typer.Option(
    "--wheel-cache", help="Where downloaded wheels are kept (default ~/.cache/crosswind/wheels).")]
PythonOpt = Annotated[str, typer.Option("--python", help="The runtime's Python version.")]


def _mib(n: int | None) -> str:
    return "–" if n is None else f"{n / 2**20:.1f} MiB"


def _render(doc: dict[str, Any]) -> None:
    err.print(f"[bold]{doc['path']}[/]  ({doc['platform']}, Python {doc['python']}, "
              f"{doc['files']:,} files, built in {doc['seconds']:.1f} s)", markup=True)
    err.print(f"  unzipped {_mib(doc['unzipped_bytes'])}"
              + (f", zipped {_mib(doc['zipped_bytes'])}" if doc["zipped_bytes"] else ""))
    for name, limit in doc["limits"].items():
        ok = "[green]within[/]" if doc["within"][name] else "[red]OVER[/]"
        err.print(f"  {name.replace('_', ' ')}: {_mib(limit)} {ok}", markup=True)
    for t in doc["templates"]:
        err.print(f"  template {t}")


@package_app.command("lambda")
@guarded
def package_lambda(
    out: OutOpt = Path("dist"),
    arch: Annotated[str, typer.Option("--arch", help="x86_64 or arm64 (the function's "
                                      "architecture).")] = "x86_64",
    python: PythonOpt = "3.11",
    add: AddOpt = None,
    wheel_cache: CacheOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The Lambda zip (handler crosswind.serverless.aws_lambda.handler) and its
    CloudFormation template; reports the size against Lambda's 250 MiB limit."""
    from crosswind.errors import ConfigError
    from crosswind.serverless.package import build_lambda

    if arch not in ("x86_64", "arm64"):
        raise ConfigError(f"--arch {arch}: x86_64 or arm64")
    doc = build_lambda(out, arch=arch, python=python, add=add or (),  # type: ignore[arg-type]
                       cache=wheel_cache).as_dict()
    print_json(doc) if json_out else _render(doc)


@package_app.command("azure-function")
@guarded
def package_azure_function(
    out: OutOpt = Path("dist"),
    python: PythonOpt = "3.11",
    add: AddOpt = None,
    wheel_cache: CacheOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The function app folder (function_app.py, host.json, vendored packages) and its
    ARM template."""
    from crosswind.serverless.package import build_azure_function

    doc = build_azure_function(out, python=python, add=add or (), cache=wheel_cache).as_dict()
    print_json(doc) if json_out else _render(doc)
