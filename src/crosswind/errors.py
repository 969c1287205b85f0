"""One error tree for crosswind.

Whether an error is worth retrying is a property of the error (``retryable``),
decided once where an SDK error is translated at a backend boundary; callers
never inspect SDK exceptions.

    CrosswindError
    ├── ConfigError                bad or missing configuration (exit 2)
    │   ├── SecretError            a secret reference that cannot be resolved
    │   └── KeyPatternError        a [keys] pattern or key template that is not valid
    ├── StoreError                 anything a backend reports
    │   ├── NotFound               key, container, bucket or table missing
    │   ├── AlreadyExists          create-only write found an existing object
    │   ├── PreconditionFailed     etag / version condition did not hold
    │   ├── AuthError              credentials rejected or permission denied
    │   ├── EndpointUnreachable    connection refused, DNS, TLS, timeout (retryable)
    │   ├── TransientError         throttling, 5xx, reset connections (retryable)
    │   ├── IntegrityError         bytes written differ from bytes read
    │   └── ChangeHistoryLost      a change-stream resume point is older than the history kept
    ├── InvalidKey                 an object key a backend cannot hold
    │   └── NameParseError         an object name that does not fit the [keys] pattern
    ├── MetadataMappingError       metadata that cannot map under the chosen policy
    │   └── EntityMappingError     a table row / document that cannot map losslessly
    ├── DeleteLimitExceeded        --delete would remove more than allowed (exit 4)
    └── ListingOrderError          a listing arrived out of key order (exit 6)

Exit 1 means "the run finished but some items failed"; a run that an error
ended early exits with that error's code, and an error without a code of its
own (not a store's, not the config's) with ``RUN_STOPPED_EXIT`` (6).
"""

from __future__ import annotations


class CrosswindError(Exception):
    """Base of every error crosswind raises on purpose."""

    retryable: bool = False
    #: process exit code the CLI uses when this error ends a command
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(CrosswindError):
    exit_code = 2


class SecretError(ConfigError):
    pass


class StoreError(CrosswindError):
    exit_code = 3


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class PreconditionFailed(StoreError):
    pass


class AuthError(StoreError):
    pass


class EndpointUnreachable(StoreError):
    retryable = True


class TransientError(StoreError):
    retryable = True


class IntegrityError(StoreError):
    """The destination holds (or reported) different bytes than were read."""


class InvalidKey(CrosswindError):
    pass


class MetadataMappingError(CrosswindError):
    pass


class DeleteLimitExceeded(CrosswindError):
    exit_code = 4


#: a run ended early by an error that is neither a store's (3) nor the config's (2)
RUN_STOPPED_EXIT = 6


class ListingOrderError(CrosswindError):
    exit_code = RUN_STOPPED_EXIT


# -- metadata rows (issue 3) ---------------------------------------------------------


class KeyPatternError(ConfigError):
    """The ``[keys]`` pattern or a key template cannot be compiled."""


class NameParseError(InvalidKey):
    """An object name does not fit the ``[keys]`` pattern.

    ``segment`` names the part of the pattern that failed (``{flight:int}``,
    a literal like ``'/'``, or ``end``), ``offset`` is where in the name, and
    ``reason`` says why, so one line is enough to fix the name or the pattern.
    """

    def __init__(self, name: str, segment: str, offset: int, reason: str) -> None:
        shown = name if len(name) <= 120 else name[:117] + "..."
        super().__init__(f"{shown!r}: {segment} at offset {offset}: {reason}")
        self.name = name
        self.segment = segment
        self.offset = offset
        self.reason = reason


class EntityMappingError(MetadataMappingError):
    """A table entity or a document that cannot be mapped to the other side.

    ``kind`` is a short machine-readable reason used by the DLQ and reports:
    ``oversize`` (a size limit of the destination), ``unmappable`` (a type or a
    name the destination cannot hold), ``invalid-key`` (PartitionKey/RowKey).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ChangeHistoryLost(StoreError):
    """The saved change-stream position is gone (pruned history, error 286);
    the caller falls back to a full reconcile."""
