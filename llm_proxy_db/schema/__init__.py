"""The head schema as metadata, and fingerprints of live schemas compared against it."""
