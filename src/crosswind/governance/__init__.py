"""Data governance (CW-8): the schema registry and its compatibility checker, the
validation before write the engines call, OpenLineage lineage, stewardship on
every report, and the catalog export.

May import: model, errors, config, state, migration, entities, mapping, keys,
secrets, version, stores (and jsonschema, jsonschema-rs, openlineage-python).
Imported by sync, metasync, validate, live, cutover and the CLI, never the
other way round (``tests/unit/test_import_graph.py``), so that every engine can take the small
interfaces it needs (a ``SchemaGate`` to check before a write, a lineage run
at the edges of a run) without importing anything above itself.
"""
