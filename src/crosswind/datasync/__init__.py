"""AWS DataSync as the mover of ``sync objects`` (``[sync] engine = "datasync"``).

crosswind creates or updates, and tags, an Azure Blob location (the SAS token
resolved only for that call), an S3 location and an ENHANCED-mode task whose
options match crosswind's (changed-only, verify what was transferred, include
and exclude filters, deletes only with ``--delete``, a task report to S3); it
starts an execution, follows it to the end, reads the task report into its own
report, records what its own check confirms as verified copies, then runs its
own validation and the metadata ingestion for what was copied.

Modules:

* ``plan``       — pure: our options → DataSync's requests, tags, and a model of
  DataSync's filter matching (property-tested against ``KeyFilter``)
* ``taskreport`` — pure: the task report's JSON documents → what was transferred,
  verified, deleted, skipped, failed
* ``client``     — the aiobotocore DataSync client and its error translation
* ``resources``  — find-or-create-or-update the locations and the task (by tag)
* ``execution``  — start an execution and follow it (progress, timeout, errors)
* ``run``        — one run, end to end, recorded in the state store

May import: config, errors, secrets, state, stores, sync (options, report),
validate, metasync. Nothing below imports this package; only the CLI does.
"""
