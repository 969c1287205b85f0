"""An optional mirror of the registry in the AWS Glue Schema Registry
(``[governance] glue_registry``), so AWS-side consumers find the schemas there.

crosswind's registry stays the authority: Glue's own compatibility checks are
not asked (every Glue schema is created with ``Compatibility = NONE``; moto
implements the calls but no checks at all), a version is mirrored only after
crosswind's checker accepted it.

* One Glue schema per subject, named after it, ``DataFormat = JSON``.
* Glue takes JSON Schema Draft-04/06/07 only, so each version is written as
  Draft-07: ``$schema`` becomes ``http://json-schema.org/draft-07/schema#``,
  ``$defs`` becomes ``definitions`` (and ``#/$defs/`` references follow);
  the keyword subset crosswind checks means the same in both drafts. A schema
  using a keyword Draft-07 does not have (``prefixItems``, ``dependentRequired``,
  ``dependentSchemas``, ``unevaluatedProperties``, ``unevaluatedItems``,
  ``$anchor``, ``$dynamicRef``) is not mirrored.
* Versions: Glue numbers a schema's versions 1, 2, … in the order they are
  registered, and crosswind mirrors its versions in order, so they normally
  agree; each Glue version also carries the metadata ``crosswind_version`` =
  crosswind's number and ``crosswind_fingerprint``, and the mapping is kept in
  the state store (``schema_glue``), so a gap (a failed mirror, retried later by
  ``crosswind schema mirror``) never confuses the two.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from crosswind.config import Config
from crosswind.errors import ConfigError, CrosswindError
from crosswind.governance.registry import Registry, SchemaVersion, ensure_tables
from crosswind.state import StateStore, now_iso

DRAFT_07 = "http://json-schema.org/draft-07/schema#"
_NOT_IN_DRAFT_07 = frozenset({"prefixItems", "dependentRequired", "dependentSchemas",
                              "unevaluatedProperties", "unevaluatedItems", "$anchor",
                              "$dynamicRef", "$dynamicAnchor"})
DDL = """
CREATE TABLE IF NOT EXISTS schema_glue(
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    registry TEXT NOT NULL,
    glue_version INTEGER NOT NULL,
    schema_version_id TEXT NOT NULL,
    mirrored_at TEXT NOT NULL,
    PRIMARY KEY(subject, version, registry)
);
"""


class GlueMirrorError(CrosswindError):
    exit_code = 3


def to_draft07(schema: Any) -> Any:
    """The Draft-07 form of a Draft 2020-12 schema (``ConfigError`` when it uses a
    keyword Draft-07 lacks)."""
    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(x) for x in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k in _NOT_IN_DRAFT_07:
                raise ConfigError(f"{k} has no Draft-07 equivalent; Glue cannot hold this schema")
            if k == "$defs":
                out["definitions"] = {n: walk(d) for n, d in v.items()}
            elif k == "$ref" and isinstance(v, str):
                out[k] = v.replace("#/$defs/", "#/definitions/")
            elif k in ("properties", "patternProperties", "definitions") and isinstance(v, dict):
                out[k] = {n: walk(d) for n, d in v.items()}  # names, not keywords
            else:
                out[k] = walk(v)
        return out

    doc = walk(copy.deepcopy(schema))
    if isinstance(doc, dict):
        doc["$schema"] = DRAFT_07
    return doc


def _client(cfg: Config) -> Any:
    # built like every AWS client of crosswind: the [aws] identity (or role_arn),
    # endpoint_url and [tls] ca_bundle
    from crosswind.observability.aws import client

    return client(cfg.aws, "glue")


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class GlueMirror:
    def __init__(self, cfg: Config, state: StateStore, client: Any | None = None) -> None:
        if not cfg.governance.glue_registry:
            raise ConfigError("[governance] glue_registry is not set")
        self.registry = cfg.governance.glue_registry
        self.state = state
        ensure_tables(state.db, DDL)
        self.glue = client if client is not None else _client(cfg)

    def mirrored(self, subject: str) -> dict[int, dict[str, Any]]:
        rows = self.state.db.execute(
            "SELECT version, glue_version, schema_version_id, mirrored_at FROM schema_glue "
            "WHERE subject=? AND registry=?", (subject, self.registry)).fetchall()
        return {int(v): {"registry": self.registry, "glue_version": int(g),
                         "schema_version_id": sid, "mirrored_at": at} for v, g, sid, at in rows}

    def mirror(self, v: SchemaVersion) -> dict[str, Any]:
        """Put one version into Glue (once); what Glue calls it."""
        done = self.mirrored(v.subject).get(v.version)
        if done is not None:
            return done
        definition = json.dumps(to_draft07(v.schema), sort_keys=True)
        try:
            self._ensure_registry()
            try:
                r = self.glue.register_schema_version(
                    SchemaId={"RegistryName": self.registry, "SchemaName": v.subject},
                    SchemaDefinition=definition)
                glue_version, sid = int(r["VersionNumber"]), str(r["SchemaVersionId"])
            except Exception as exc:
                if _code(exc) != "EntityNotFoundException":
                    raise
                r = self.glue.create_schema(
                    RegistryId={"RegistryName": self.registry}, SchemaName=v.subject,
                    DataFormat="JSON", Compatibility="NONE", SchemaDefinition=definition,
                    Description=f"crosswind subject {v.subject} (mirror; crosswind checks "
                                "compatibility)")
                glue_version, sid = int(r.get("LatestSchemaVersion") or 1), str(
                    r["SchemaVersionId"])
            for key, value in (("crosswind_version", str(v.version)),
                               ("crosswind_fingerprint", v.fingerprint[:128])):
                self.glue.put_schema_version_metadata(
                    SchemaVersionId=sid, MetadataKeyValue={"MetadataKey": key,
                                                           "MetadataValue": value})
        except ConfigError:
            raise
        except Exception as exc:
            raise GlueMirrorError(f"Glue Schema Registry {self.registry!r}: "
                                  f"{type(exc).__name__}: {exc}") from None
        at = now_iso()
        self.state.db.execute(
            "INSERT OR REPLACE INTO schema_glue(subject, version, registry, glue_version, "
            "schema_version_id, mirrored_at) VALUES (?, ?, ?, ?, ?, ?)",
            (v.subject, v.version, self.registry, glue_version, sid, at))
        return {"registry": self.registry, "glue_version": glue_version,
                "schema_version_id": sid, "mirrored_at": at}

    def mirror_all(self, reg: Registry) -> list[dict[str, Any]]:
        """Every version not mirrored yet, in order."""
        return [{"subject": v.subject, "version": v.version, **self.mirror(v)}
                for v in reg.iter_all()]

    def _ensure_registry(self) -> None:
        try:
            self.glue.create_registry(RegistryName=self.registry,
                                      Description="crosswind schema registry mirror")
        except Exception as exc:
            if _code(exc) != "AlreadyExistsException":
                raise
