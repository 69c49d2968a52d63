"""``python -m warest``: the same commands as ``warest``."""

from warest.cli import main

main()
