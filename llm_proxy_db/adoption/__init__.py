"""Adopting databases that no migration tool recorded: known states, detection, the record."""
