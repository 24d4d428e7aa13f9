"""fulfillment domain."""
