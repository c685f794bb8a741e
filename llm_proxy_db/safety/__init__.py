"""What protects the data: locks, the guarded path, backups, restores, rehearsals, the run log."""
