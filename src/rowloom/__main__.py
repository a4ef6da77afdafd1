"""`python -m rowloom`: the same as the `rowloom` console script."""

from rowloom.cli import main

main()
