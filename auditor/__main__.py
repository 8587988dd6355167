"""`python -m auditor` runs the same command line as `auditor`."""

from auditor.cli import main

main()
