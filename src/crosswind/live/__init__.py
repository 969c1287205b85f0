"""The replication service (``crosswind replicate``): change sources (Event Grid
events on an Azure Storage Queue, S3 events on SQS, DocumentDB change streams,
the Azure Table poll, the periodic reconcile), appliers that make the replica
match the primary key by key through ``sync/`` and ``metasync/``, lag
measurement, per-endpoint circuit breakers, the scheduler and the local HTTP
endpoint.

May import: model, errors, config, state, stores, sync, metasync, validate,
observability. Never imported by those.
"""
