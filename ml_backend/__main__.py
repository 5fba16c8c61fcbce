"""``python -m ml_backend``: the ``scraiber`` command line."""

from ml_backend.cli import main

main()
