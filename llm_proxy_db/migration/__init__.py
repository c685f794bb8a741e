"""Running revisions: the environment, the executor, the chain, its manifest and verification."""
