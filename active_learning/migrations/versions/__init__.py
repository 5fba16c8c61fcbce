"""Migrations, oldest first: ``0001_initial`` is the schema of the databases made before migrations."""
