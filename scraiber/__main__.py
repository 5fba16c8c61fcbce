"""``python -m scraiber``: the ``scraiber`` command line."""

from scraiber.cli import main

main()
