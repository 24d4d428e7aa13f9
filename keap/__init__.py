"""Keap (Infusionsoft): the member's Keap subscriptions on the billing page, and card updates for them."""
