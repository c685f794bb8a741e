"""Configuration: settings, their parsing and validation, masking, paths, the Alembic config."""
