"""Builds the two deployable packages, from PyPI wheels only.

* ``build_lambda``: a zip for the Lambda Python runtime: crosswind itself at the
  root (the handler is ``crosswind.serverless.aws_lambda.handler``) and the
  wheels of its runtime dependencies for the runtime's platform
  (``manylinux2014_x86_64`` or ``manylinux2014_aarch64``, CPython 3.11),
  unpacked beside it, with the Lambda's own extra (Powertools).
* ``build_azure_function``: a function app folder (``function_app.py``,
  ``host.json``, ``requirements.txt``) with the same dependencies vendored in
  ``.python_packages/lib/site-packages`` (deployable without a remote build:
  ``func azure functionapp publish APP --no-build`` or a zip of the folder as
  ``WEBSITE_RUN_FROM_PACKAGE``); Azure Functions' Linux workers run the same
  manylinux x86_64 wheels.

Dependencies are crosswind's own (from its installed metadata) less those only
the CLI and the object engines use, at the versions installed here (a
constraints file of this environment), so the package runs what the tests ran.
Wheels are fetched once into a cache (``pip download``) and installed from it
without the network afterwards. botocore's service models are cut to the
services the handlers call (SQS, Secrets Manager, STS): the rest are most of its
size. The infrastructure templates are copied next to each package.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from crosswind.errors import ConfigError, CrosswindError

Arch = Literal["x86_64", "arm64"]

#: AWS Lambda: a function's code, unzipped, layers included
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
#: AWS Lambda: a zip uploaded directly (larger ones go through S3)
LAMBDA_DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
#: Azure Functions has no package limit of Lambda's kind; a run-from-package zip
#: over 1 GiB is slow to mount, so that is where the report draws its line
AZURE_PACKAGE_GUIDE = 1024 * 1024 * 1024

#: crosswind's dependencies only the CLI, the object engines or the cutover need
# jsonschema-rs: the schema gate's fast path, which the handlers do not run (no schema
# registry there); its 0.60 wheels need a newer glibc than Lambda's python3.11 for arm64.
NOT_SERVERLESS = frozenset({"obstore", "typer", "rich", "prometheus-client", "purgatory",
                            "sshsig", "rfc8785", "jsonschema-rs"})
LAMBDA_EXTRA = ("aws-lambda-powertools",)
AZURE_EXTRA = ("azure-functions",)
#: botocore service models the handlers use (the DLQ, secrets, credentials)
BOTOCORE_SERVICES = frozenset({"sqs", "secretsmanager", "sts"})

_PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
_TEMPLATES = Path(__file__).parent / "templates"


class PackagingError(CrosswindError):
    exit_code = 3


@dataclass
class PackageReport:
    kind: str
    path: Path
    python: str
    platform: str
    #: bytes of every file as deployed (unzipped)
    unzipped_bytes: int
    files: int
    seconds: float
    zipped_bytes: int | None = None
    limits: dict[str, int] = field(default_factory=dict)
    templates: list[str] = field(default_factory=list)
    distributions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        within = {name: self.unzipped_bytes <= limit if "unzipped" in name
                  else (self.zipped_bytes or 0) <= limit for name, limit in self.limits.items()}
        return {"kind": self.kind, "path": str(self.path), "python": self.python,
                "platform": self.platform, "unzipped_bytes": self.unzipped_bytes,
                "zipped_bytes": self.zipped_bytes, "files": self.files,
                "seconds": round(self.seconds, 1), "limits": self.limits, "within": within,
                "templates": self.templates, "distributions": self.distributions}


def requirements(extra: Sequence[str]) -> list[str]:
    """crosswind's runtime requirements less ``NOT_SERVERLESS``, plus ``extra``,
    each pinned to the version installed here."""
    names = []
    for line in md.requires("crosswind") or []:
        if ";" in line:  # an extra's ("dev") or a platform's: not the runtime's
            continue
        found = re.match(r"[A-Za-z0-9._-]+", line.strip())
        if found and found.group(0).lower() not in NOT_SERVERLESS:
            names.append(found.group(0))
    out = []
    for name in [*names, *extra]:
        try:
            out.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError:
            raise ConfigError(f"{name} is not installed here (pip install "
                              "'crosswind[serverless]'); the package pins what is") from None
    return out


def _constraints() -> str:
    """Every distribution installed here, pinned: transitive dependencies resolve to
    the versions the tests ran with."""
    pins = {}
    for d in md.distributions():
        name = d.metadata["Name"]
        if name and name.lower() not in ("crosswind", "pip"):
            pins[name.lower()] = f"{name}=={d.version}"
    return "\n".join(sorted(pins.values())) + "\n"


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "crosswind" / "wheels"


def _pip(args: Iterable[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check",
                           "--no-input", *args], capture_output=True, text=True, check=False)


def install_wheels(target: Path, reqs: Sequence[str], *, platform: str, python: str,
                   cache: Path) -> None:
    """``reqs`` and their dependencies, as wheels for ``platform``, into ``target``:
    from the cache alone when it has them, else fetched into it first."""
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crosswind-pkg-") as tmp:
        req_file, con_file = Path(tmp) / "requirements.txt", Path(tmp) / "constraints.txt"
        req_file.write_text("\n".join(reqs) + "\n")
        con_file.write_text(_constraints())
        common = ["--only-binary=:all:", "--platform", platform, "--python-version", python,
                  "--implementation", "cp", "-r", str(req_file), "-c", str(con_file)]
        install = ["install", "--quiet", "--no-compile", "--target", str(target), *common]
        done = _pip([*install, "--no-index", "--find-links", str(cache)])
        if done.returncode != 0:
            fetched = _pip(["download", "--quiet", "--dest", str(cache), *common])
            if fetched.returncode != 0:
                raise PackagingError("pip download failed: " + _last_lines(fetched.stderr))
            done = _pip([*install, "--no-index", "--find-links", str(cache)])
            if done.returncode != 0:
                raise PackagingError("pip install failed: " + _last_lines(done.stderr))
    shutil.rmtree(target / "bin", ignore_errors=True)


def _last_lines(text: str, n: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-n:])


def _prune(root: Path) -> None:
    """What nothing at run time reads: bytecode caches, botocore's other services."""
    for cache_dir in list(root.rglob("__pycache__")):
        shutil.rmtree(cache_dir, ignore_errors=True)
    data = root / "botocore" / "data"
    if data.is_dir():
        for service in data.iterdir():
            if service.is_dir() and service.name not in BOTOCORE_SERVICES:
                shutil.rmtree(service)


def copy_crosswind(target: Path) -> None:
    """The crosswind package as installed here (less the test rig), plus its
    metadata, so ``crosswind_version()`` reports the build."""
    import crosswind

    src = Path(crosswind.__file__).parent
    shutil.copytree(src, target / "crosswind", ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "rig"))
    dist = md.distribution("crosswind")
    info = target / f"crosswind-{dist.version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(dist.read_text("METADATA") or
                                   f"Metadata-Version: 2.1\nName: crosswind\n"
                                   f"Version: {dist.version}\n")


def _tree_size(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def _copy_templates(out: Path, kind: str) -> list[str]:
    copied = []
    for t in sorted((_TEMPLATES / kind).iterdir()):
        if t.is_file():
            shutil.copy2(t, out / t.name)
            copied.append(str(out / t.name))
    return copied


def _distributions(root: Path) -> list[str]:
    return sorted(p.name.removesuffix(".dist-info") for p in root.glob("*.dist-info"))


def _check_python(python: str) -> None:
    if python != "3.11":
        raise ConfigError(f"--python {python}: crosswind packages are built for 3.11 "
                          "(the Lambda runtime python3.11, Azure Functions Python 3.11)")


def _add_files(root: Path, add: Sequence[Path]) -> None:
    for f in add:
        if not f.is_file():
            raise ConfigError(f"--add {f}: not a file")
        shutil.copy2(f, root / f.name)


def build_lambda(out: Path, *, arch: Arch = "x86_64", python: str = "3.11",
                 add: Sequence[Path] = (), cache: Path | None = None) -> PackageReport:
    """``out/crosswind-lambda-<arch>.zip`` and the SAM template; see the module."""
    _check_python(python)
    started = time.monotonic()
    platform = _PLATFORMS[arch]
    out.mkdir(parents=True, exist_ok=True)
    zip_path = out / f"crosswind-lambda-{arch}.zip"
    with tempfile.TemporaryDirectory(prefix="crosswind-lambda-") as tmp:
        root = Path(tmp) / "task"
        install_wheels(root, requirements(LAMBDA_EXTRA), platform=platform, python=python,
                       cache=cache or default_cache())
        copy_crosswind(root)
        _add_files(root, add)
        _prune(root)
        unzipped, files = _tree_size(root)
        dists = _distributions(root)
        part = zip_path.with_suffix(".zip.part")
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for p in sorted(root.rglob("*")):
                if p.is_file():
                    info = zipfile.ZipInfo(str(p.relative_to(root)), date_time=(2026, 1, 1,
                                                                                0, 0, 0))
                    # readable by the runtime's user; executables stay executable
                    info.external_attr = (0o755 if os.access(p, os.X_OK) else 0o644) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, p.read_bytes())
        part.replace(zip_path)
    report = PackageReport(
        "lambda", zip_path, python, platform, unzipped, files, time.monotonic() - started,
        zipped_bytes=zip_path.stat().st_size,
        limits={"lambda_unzipped": LAMBDA_UNZIPPED_LIMIT,
                "lambda_direct_upload_zipped": LAMBDA_DIRECT_UPLOAD_LIMIT},
        templates=_copy_templates(out, "aws"), distributions=dists)
    if unzipped > LAMBDA_UNZIPPED_LIMIT:
        raise PackagingError(f"{zip_path}: {unzipped / 2**20:.1f} MiB unzipped, over "
                             "Lambda's 250 MiB limit")
    return report


def build_azure_function(out: Path, *, python: str = "3.11", add: Sequence[Path] = (),
                         cache: Path | None = None) -> PackageReport:
    """``out/crosswind-function/``, a function app folder, and the ARM template."""
    _check_python(python)
    started = time.monotonic()
    platform = _PLATFORMS["x86_64"]
    out.mkdir(parents=True, exist_ok=True)
    app = out / "crosswind-function"
    staging = out / ".crosswind-function.part"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    site = staging / ".python_packages" / "lib" / "site-packages"
    reqs = requirements(AZURE_EXTRA)
    install_wheels(site, reqs, platform=platform, python=python,
                   cache=cache or default_cache())
    copy_crosswind(site)
    _prune(site)
    for name in ("function_app.py", "host.json", ".funcignore"):
        shutil.copy2(_TEMPLATES / "function" / name, staging / name)
    # For a remote build instead (SCM_DO_BUILD_DURING_DEPLOYMENT): what it would install.
    (staging / "requirements.txt").write_text(
        "# crosswind's dependencies as vendored in .python_packages (a remote build\n"
        "# installs these; crosswind itself is vendored there too)\n" + "\n".join(reqs) + "\n")
    _add_files(staging, add)
    unzipped, files = _tree_size(staging)
    dists = _distributions(site)
    shutil.rmtree(app, ignore_errors=True)
    staging.replace(app)
    return PackageReport(
        "azure-function", app, python, platform, unzipped, files, time.monotonic() - started,
        limits={"azure_run_from_package_unzipped_guide": AZURE_PACKAGE_GUIDE},
        templates=_copy_templates(out, "azure"), distributions=dists)
