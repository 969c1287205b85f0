"""The flow's datasets and their OpenLineage names.

Where the OpenLineage naming spec has a convention, it is used (through
openlineage-python's own naming classes); where it has none, the project's:

* Azure Blob container (spec, WASBS): namespace
  ``wasbs://{container}@{account}.dfs.core.windows.net``, name the ``[sync] prefix``
  or ``/`` for all of it;
* S3 bucket (spec, S3): namespace ``s3://{bucket}``, name as above;
* Azure Table (crosswind's convention): namespace
  ``azuretable://{account}.table.core.windows.net``, name ``{table}``;
* DocumentDB (crosswind's convention): namespace ``mongodb://{host}:{port}`` (the
  first host of the URI, never its credentials), name ``{database}.{collection}``.

A dataset is the whole container, bucket, table or collection the flow moves
(object keys are far too many to be datasets of their own). The account, host
and port are read from the configured references (resolved like the stores do,
without I/O); one that cannot be resolved here (a missing environment variable)
is named ``unresolved``, so a catalog export works on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from openlineage.client.naming.dataset import S3, WASBS

from crosswind.config import Config
from crosswind.errors import CrosswindError
from crosswind.governance.subjects import Subject

Side = Literal["azure", "aws"]
What = Literal["objects", "rows"]
UNRESOLVED = "unresolved"


@dataclass(frozen=True, slots=True)
class DatasetRef:
    namespace: str
    name: str
    side: Side
    what: What
    #: the registry subject of what this dataset holds
    subject: Subject
    #: the storage layer, as the storage facet says it
    storage: str
    file_format: str | None
    description: str

    @property
    def uri(self) -> str:
        return f"{self.namespace}{self.name}" if self.name.startswith("/") else (
            f"{self.namespace}/{self.name}")


def azure_account(cfg: Config) -> str:
    from crosswind.stores.azure_common import resolve_auth

    try:
        return resolve_auth(cfg.azure).account_name or UNRESOLVED
    except (CrosswindError, ValueError):
        return UNRESOLVED


def documentdb_authority(cfg: Config) -> str:
    """``host:port`` of the first host of ``[aws] documentdb_uri`` (27017 by default)."""
    from pymongo import uri_parser

    from crosswind.secrets import is_reference, resolve

    raw = cfg.aws.documentdb_uri
    if not raw:
        return UNRESOLVED
    try:
        uri = resolve(raw, where="[aws].documentdb_uri", allow_literal=True
                      ).get_secret_value() if is_reference(raw) else raw
        nodes = uri_parser.parse_uri(uri, validate=False, warn=False)["nodelist"]
    except Exception:
        return UNRESOLVED
    if not nodes:
        return UNRESOLVED
    host, port = nodes[0]
    return f"{host}:{port or 27017}"


def _path(prefix: str) -> str:
    return prefix or "/"


def objects_dataset(cfg: Config, side: Side) -> DatasetRef:
    name = _path(cfg.sync.prefix)
    if side == "azure":
        n = WASBS(container=cfg.azure.container, service_name=azure_account(cfg),
                  object_key=name)
        return DatasetRef(n.get_namespace(), n.get_name(), "azure", "objects",
                          "object-metadata", "azure-blob", "json",
                          f"flight-event objects in the Azure Blob container "
                          f"{cfg.azure.container}")
    s = S3(bucket_name=cfg.aws.bucket, object_key=name)
    return DatasetRef(s.get_namespace(), s.get_name(), "aws", "objects", "object-metadata",
                      "s3", "json", f"flight-event objects in the S3 bucket {cfg.aws.bucket}")


def rows_dataset(cfg: Config, side: Side) -> DatasetRef:
    if side == "azure":
        return DatasetRef(f"azuretable://{azure_account(cfg)}.table.core.windows.net",
                          cfg.azure.table or UNRESOLVED, "azure", "rows", "table-entity",
                          "azure-table", None,
                          f"flight-event metadata rows in the Azure table {cfg.azure.table}")
    return DatasetRef(f"mongodb://{documentdb_authority(cfg)}",
                      f"{cfg.aws.database}.{cfg.aws.collection}", "aws", "rows",
                      "documentdb-document", "documentdb", "bson",
                      f"flight-event metadata documents in DocumentDB "
                      f"{cfg.aws.database}.{cfg.aws.collection}")


def flow_datasets(cfg: Config) -> list[DatasetRef]:
    """Every dataset the flow has (rows only when configured)."""
    out = [objects_dataset(cfg, "azure"), objects_dataset(cfg, "aws")]
    if cfg.azure.table and cfg.aws.documentdb_uri:
        out += [rows_dataset(cfg, "azure"), rows_dataset(cfg, "aws")]
    return out
