"""What the llm-proxy service itself keeps in the database: goose rows, old writers, artefacts."""
