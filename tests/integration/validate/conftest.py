"""The metadata-row fixtures (table, database, config with [keys]) are shared
with the metadata tests: imported here so validation tests can use them."""

from tests.integration.metadata.conftest import (  # noqa: F401  (fixtures)
    make_meta_env,
    mongo,
    table_service,
)
