"""membership domain."""
