"""`python -m crosswind` runs the CLI."""

from crosswind.cli import main

main()
