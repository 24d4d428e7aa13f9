"""automations domain: tags applied by events, owner-defined rules, outgoing webhooks (the CRM link).

Other domains call one function, :func:`automations.triggers.fire`, when something happens to a member.
Dependency direction: fulfillment (and billing) -> automations -> membership -> emails.
"""
