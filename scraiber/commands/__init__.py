"""The ``scraiber`` commands, one module per subject, registered as entry points in ``pyproject.toml``.

Each command reads the one settings object (:func:`scraiber.settings.settings_from`), builds
what it needs from the rooms and prints progress and results; the rooms never see the command
line or the environment.
"""
