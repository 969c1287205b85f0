"""Serverless deployments of the metadata engines (issue 14): the seed's Lambda
and Azure Function, on the same code as ``crosswind sync metadata``.

* ``aws_lambda``: ``handler(event, context)``, SQS-triggered by S3 event
  notifications; each record's objects go through ``ForwardSync.objects``
  (object name → keys → the Azure row → the document), partial batch failures,
  poison records to the DLQ with their reason, a clean stop before the
  function's time runs out.
* ``azure_function``: the v2 ``FunctionApp``; a timer continues the DocumentDB
  change stream through ``ReverseSync`` from a durable checkpoint.
* ``ledger``: ``DocumentLedger``, the durable ledger both keep in a DocumentDB
  collection (a ``metasync.ledger.RowLedger``, like the CLI's SQLite ``Ledger``).
* ``settings``: the configuration from ``CROSSWIND_CONFIG`` / ``CROSSWIND_CONFIG_TOML``
  and the deployment's knobs from the environment; ``runlog``: the JSON report,
  counters and logs of an invocation.
* ``package``: builds the Lambda zip and the function app folder;
  ``templates/``: CloudFormation/SAM, Bicep and ARM for both.

It sits at the edge, like ``cli/``: it may import ``config``, ``metasync``,
``live.events`` (and ``live.changes``, the types those parsers return),
``stores`` and the pure core; nothing imports it except the CLI's
``crosswind package`` command (``tests/unit/test_import_graph.py``).
"""
