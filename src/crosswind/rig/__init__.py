"""The test and demo rig: local emulators (Azurite, moto server, SecantusDB),
demo data for the metadata rows, and rclone as an independent checker.

For the tests, the demo and the benchmarks only. No core module imports this
package (``tests/unit/test_import_graph.py`` checks it), and it may import
anything in crosswind except the CLI.
"""
