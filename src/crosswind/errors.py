"""One error tree for crosswind.

Whether an error is worth retrying is a property of the error (``retryable``),
decided once where an SDK error is translated at a backend boundary; callers
never inspect SDK exceptions.

    CrosswindError
    ├── ConfigError                bad or missing configuration (exit 2)
    │   └── SecretError            a secret reference that cannot be resolved
    ├── StoreError                 anything a backend reports
    │   ├── NotFound               key, container, bucket or table missing
    │   ├── AlreadyExists          create-only write found an existing object
    │   ├── PreconditionFailed     etag / version condition did not hold
    │   ├── AuthError              credentials rejected or permission denied
    │   ├── EndpointUnreachable    connection refused, DNS, TLS, timeout (retryable)
    │   ├── TransientError         throttling, 5xx, reset connections (retryable)
    │   └── IntegrityError         bytes written differ from bytes read
    ├── InvalidKey                 an object key a backend cannot hold
    ├── MetadataMappingError       metadata that cannot map under the chosen policy
    ├── DeleteLimitExceeded        --delete would remove more than allowed
    └── ListingOrderError          a listing arrived out of key order
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


class ListingOrderError(CrosswindError):
    pass
