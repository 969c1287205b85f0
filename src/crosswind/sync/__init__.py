"""Object sync: list (stores) → march (sorted merge) → plan (decide) → transfer (execute)."""
