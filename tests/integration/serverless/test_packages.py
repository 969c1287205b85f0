"""The built packages run on their own: the Lambda zip and the function app
folder are each imported in a clean virtualenv (no site-packages of ours, only
what the package holds), and their handlers process real invocations against
the rig. The templates next to them are checked: cfn-lint for CloudFormation,
structure and references for ARM."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crosswind.serverless.package import (
    LAMBDA_DIRECT_UPLOAD_LIMIT,
    LAMBDA_UNZIPPED_LIMIT,
    default_cache,
)
from tests.integration.metadata.conftest import MetaEnv
from tests.integration.monitoring_rig import Receiver, receiver
from tests.integration.serverless.conftest import PK, LambdaEnv, flight_key, lambda_event, row

__all__ = ["receiver"]  # the fixture

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dist")


def _build(kind: str, dist: Path, *options: str) -> dict[str, Any]:
    """``crosswind package KIND --out DIST --json``, in-process; its JSON report."""
    from typer.testing import CliRunner

    from crosswind.cli.app import app

    result = CliRunner().invoke(app, ["package", kind, "--out", str(dist), "--wheel-cache",
                                      str(default_cache()), *options, "--json"],
                                prog_name="crosswind")
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    assert doc["kind"] == kind
    return doc


@pytest.fixture(scope="session")
def lambda_package(dist: Path) -> dict[str, Any]:
    # Built once per session; wheels come from the cache after the first build ever
    # (measured on two cores: ~20 s with an empty cache, 7-17 s from the cache).
    return _build("lambda", dist)


@pytest.fixture(scope="session")
def function_package(dist: Path) -> dict[str, Any]:
    return _build("azure-function", dist)


@pytest.fixture(scope="session")
def clean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with nothing installed (not even pip)."""
    venv = tmp_path_factory.mktemp("clean") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


def run_isolated(python: Path, paths: list[Path], script: str, env: dict[str, str],
                 stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``script`` in the clean interpreter with only ``paths`` added (as Lambda puts
    /var/task and Azure .python_packages on sys.path); no PYTHONPATH, no user site."""
    boot = ("import sys\n" + "".join(f"sys.path.insert(0, {str(p)!r})\n" for p in
                                     reversed(paths)) + textwrap.dedent(script))
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")
                 and k != "VIRTUAL_ENV"}
    return subprocess.run([str(python), "-s", "-c", boot], input=stdin, text=True,
                          capture_output=True, env={**clean_env, **env}, timeout=240,
                          check=False)


def test_the_lambda_zip_fits_and_runs_the_handler_in_a_clean_virtualenv(
        lambda_package: dict[str, Any], clean_python: Path,
        make_lambda_env: Callable[..., LambdaEnv], tmp_path: Path) -> None:
    r = lambda_package
    assert r["within"] == {"lambda_unzipped": True, "lambda_direct_upload_zipped": True}
    assert r["limits"] == {"lambda_unzipped": LAMBDA_UNZIPPED_LIMIT,
                           "lambda_direct_upload_zipped": LAMBDA_DIRECT_UPLOAD_LIMIT}
    # the sizes the report gives are the zip's
    assert r["zipped_bytes"] == Path(r["path"]).stat().st_size < LAMBDA_DIRECT_UPLOAD_LIMIT
    with zipfile.ZipFile(r["path"]) as zf:
        assert r["unzipped_bytes"] == sum(i.file_size for i in zf.infolist())
        assert r["unzipped_bytes"] < LAMBDA_UNZIPPED_LIMIT
    print(f"lambda zip: {r['unzipped_bytes'] / 2**20:.1f} MiB unzipped, "
          f"{r['zipped_bytes'] / 2**20:.1f} MiB zipped, {r['seconds']:.1f} s")
    task = tmp_path / "task"
    with zipfile.ZipFile(r["path"]) as zf:
        names = zf.namelist()
        assert "crosswind/serverless/aws_lambda.py" in names
        assert not any(n.startswith("crosswind/rig/") for n in names)
        zf.extractall(task)
    env = make_lambda_env()
    ids = [str(uuid.uuid4()) for _ in range(2)]
    env.meta.put_rows(*(row(PK, i) for i in ids))
    for i in ids:
        env.put_object(flight_key(i))
    env.sqs.send_message(QueueUrl=env.queue_url, MessageBody="not json at all")
    messages = env.receive_all(3)
    event = lambda_event(messages, env.queue_arn)
    done = run_isolated(clean_python, [task], """
        import json, sys
        import crosswind, botocore, aws_lambda_powertools
        from crosswind.serverless.aws_lambda import handler
        class Context:
            aws_request_id = "zip-test"
            function_name = "crosswind"
            memory_limit_in_mb = 512
            invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:crosswind"
            def get_remaining_time_in_millis(self):
                return 60000
        response = handler(json.load(sys.stdin), Context())
        print("RESULT " + json.dumps({"response": response, "from": [
            m.__file__ for m in (crosswind, botocore, aws_lambda_powertools)]}))
        """, {"CROSSWIND_CONFIG": str(env.meta.config_path),
              "CROSSWIND_DLQ_URL": env.dlq_url}, stdin=json.dumps(event))
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["response"] == {"batchItemFailures": []}
    assert all(f.startswith(str(task)) for f in result["from"])  # nothing from our venv
    assert set(env.meta.documents()) == {(PK, i) for i in ids}
    [dead] = env.dlq_messages()
    assert dead["MessageAttributes"]["crosswind-kind"]["StringValue"] == "poison"
    # its logs are JSON lines, the invocation's report among them
    logs = [json.loads(ln) for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert any(d.get("message") == "crosswind invocation" for d in logs)
    # and its metrics as EMF lines, the catalogue's rows among them
    written = [d for d in logs if d.get("outcome") == "written" and "crosswind_rows_total" in d]
    assert [d["crosswind_rows_total"] for d in written] == [[2.0]]


def test_the_function_folder_runs_a_timer_invocation_in_a_clean_virtualenv(
        function_package: dict[str, Any], clean_python: Path,
        make_meta_env: Callable[..., MetaEnv], receiver: Callable[..., Receiver]) -> None:
    folder = Path(function_package["path"])
    assert (folder / "function_app.py").is_file()
    host = json.loads((folder / "host.json").read_text())
    assert host["version"] == "2.0" and host["functionTimeout"] == "00:10:00"
    print(f"function app: {function_package['unzipped_bytes'] / 2**20:.1f} MiB, "
          f"{function_package['seconds']:.1f} s")
    env = make_meta_env()
    env.coll.insert_many([{"_id": f"p/r{i}", "PartitionKey": "p", "RowKey": f"r{i}", "v": i}
                          for i in range(3)])
    site = folder / ".python_packages" / "lib" / "site-packages"
    rec = receiver(lambda path, body: (200, {"itemsReceived": 1, "itemsAccepted": 1,
                                            "errors": []}))
    timer = json.dumps({"Schedule": {"AdjustForDST": True}, "ScheduleStatus": {},
                        "IsPastDue": True})
    done = run_isolated(clean_python, [folder, site], f"""
        import asyncio, json, logging
        logging.basicConfig(level=logging.INFO)  # as the Functions host's worker does
        import azure.functions, crosswind
        from azure.functions import meta
        from azure.functions.timer import TimerRequestConverter
        import function_app
        [fn] = function_app.app.get_functions()
        timer = TimerRequestConverter.decode(meta.Datum({timer!r}, "json"),
                                             trigger_metadata={{}})
        asyncio.run(fn.get_user_function()(timer))
        print("RESULT " + json.dumps([m.__file__ for m in (azure.functions, crosswind)]))
        """, {"CROSSWIND_CONFIG_TOML": env.config_path.read_text(),
              "CROSSWIND_SCHEDULE": "0 */1 * * * *",
              # the exporter in the folder sends the rows to a local ingestion receiver
              "APPLICATIONINSIGHTS_CONNECTION_STRING":
                  f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint={rec.url}/",
              "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
              "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true"})
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    assert all(f.startswith(str(site)) for f in json.loads(line.removeprefix("RESULT ")))
    assert {k: e.properties["v"].value for k, e in env.azure_rows().items()} == {
        ("p", f"r{i}"): i for i in range(3)}
    assert '"crosswind invocation"' in done.stderr  # the logging module writes to stderr
    # deltas (a later export at the worker's exit sends 0): summed
    written = sum(m["value"] for b in rec.bodies("/v2.1/track")
                  for e in (b if isinstance(b, list) else [b])
                  for m in e["data"]["baseData"]["metrics"]
                  if m["name"] == "crosswind_rows_total"
                  and e["data"]["baseData"]["properties"]["outcome"] == "written")
    assert written == 3


_ELF_MACHINES = {0x3E: "x86_64", 0xB7: "arm64"}


def _binary_machines(zip_path: Path) -> dict[str, set[str]]:
    """The machine of every ELF file in the zip (extension modules, bundled
    libraries): machine name -> the files built for it."""
    found: dict[str, set[str]] = {}
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            with zf.open(info) as f:
                head = f.read(20)
            if head[:4] == b"\x7fELF":
                machine = int.from_bytes(head[18:20], "little")
                found.setdefault(_ELF_MACHINES.get(machine, hex(machine)), set()).add(
                    info.filename)
    return found


def test_the_zip_is_built_for_the_architecture_chosen(lambda_package: dict[str, Any],
                                                      tmp_path: Path) -> None:
    x86 = _binary_machines(Path(lambda_package["path"]))
    assert set(x86) == {"x86_64"} and any("pydantic_core" in f for f in x86["x86_64"])
    arm = _build("lambda", tmp_path, "--arch", "arm64")
    assert arm["platform"] == "manylinux2014_aarch64" and all(arm["within"].values())
    assert Path(arm["path"]).name == "crosswind-lambda-arm64.zip"
    machines = _binary_machines(Path(arm["path"]))
    assert set(machines) == {"arm64"}, {k: sorted(v)[:3] for k, v in machines.items()}
    # the same packages' binaries, for the other machine
    def tops(files: set[str]) -> set[str]:
        return {f.split("/")[0].split(".")[0] for f in files}

    assert tops(machines["arm64"]) == tops(x86["x86_64"])


def test_the_cloudformation_template_lints_clean(lambda_package: dict[str, Any],
                                                tmp_path: Path) -> None:
    [template] = [Path(t) for t in lambda_package["templates"] if t.endswith(".yaml")]
    from cfnlint.api import lint_file

    # cfn-lint's errors and warnings: none may match
    assert [str(m) for m in lint_file(template)] == []
    # and the linter does look: a wrong runtime and a typo in a property are found
    broken = tmp_path / "broken.yaml"
    broken.write_text(template.read_text().replace("Runtime: python3.11", "Runtime: python9")
                      .replace("MaximumBatchingWindowInSeconds", "MaximumBatchWindow"))
    found = {m.rule.id for m in lint_file(broken)}
    assert {"E3030", "E3002"} <= found, found
    text = template.read_text()
    # what the template must hold, beyond what the linter can know
    for needle in ("ReportBatchItemFailures", "crosswind.serverless.aws_lambda.handler",
                   "CROSSWIND_DLQ_URL", "deadLetterTargetArn", "Threshold: 70",
                   "aws:SourceArn", "python3.11"):
        assert needle in text


def _arm_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            if k != "metadata":  # descriptions, not expressions
                yield from _arm_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _arm_strings(v)


def test_the_arm_template_is_well_formed(function_package: dict[str, Any]) -> None:
    """What can be checked offline (no ARM deployment validation, no Bicep or
    template-analyzer here): the document's shape, every resource's type, name and
    apiVersion, balanced expressions, every parameter and variable referenced is
    declared and every declared one is used, dependsOn names resources of the
    template, and the pieces the deployment needs are there."""
    [path] = [Path(t) for t in function_package["templates"] if t.endswith(".json")]
    t = json.loads(path.read_text())
    assert t["$schema"].endswith("/deploymentTemplate.json#")
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", t["contentVersion"])
    assert set(t) <= {"$schema", "contentVersion", "metadata", "parameters", "variables",
                      "resources", "outputs", "functions", "apiProfile"}
    types = set()
    for res in t["resources"]:
        assert {"type", "apiVersion", "name"} <= set(res), res
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", res["apiVersion"])
        types.add(res["type"])
    strings = list(_arm_strings(t))
    for s in strings:
        if s.startswith("["):
            assert s.endswith("]") and s.count("(") == s.count(")"), s
    used_params = {m for s in strings for m in re.findall(r"parameters\('([^']+)'\)", s)}
    used_vars = {m for s in strings for m in re.findall(r"variables\('([^']+)'\)", s)}
    assert used_params == set(t["parameters"])
    assert used_vars == set(t["variables"])
    for res in t["resources"]:
        for dep in res.get("dependsOn", []):
            m = re.match(r"\[(?:resourceId|extensionResourceId)\(.*?'([A-Za-z.]+/[A-Za-z/]+)'",
                         dep)
            assert m and m.group(1) in types, dep
    assert {"Microsoft.EventGrid/systemTopics/eventSubscriptions", "Microsoft.Web/sites",
            "Microsoft.Storage/storageAccounts/queueServices/queues",
            "Microsoft.Authorization/roleAssignments"} <= types
    site = next(r for r in t["resources"] if r["type"] == "Microsoft.Web/sites")
    assert site["identity"]["type"] == "SystemAssigned"
    settings = {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}
    assert settings["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert "@Microsoft.KeyVault(" in settings["DOCDB_URI"]
    assert {"CROSSWIND_CONFIG_TOML", "CROSSWIND_SCHEDULE"} <= set(settings)
