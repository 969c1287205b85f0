"""Metadata rows: Azure Table Storage ⇄ DocumentDB (issue 3)."""
