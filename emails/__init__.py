"""emails domain."""
