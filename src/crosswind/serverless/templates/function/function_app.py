"""Azure Functions entry point (Python v2 programming model): the app is crosswind's
reverse sync of metadata rows, ``crosswind.serverless.azure_function.app``."""

from crosswind.serverless.azure_function import app

__all__ = ["app"]
