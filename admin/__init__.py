"""The owner's admin: server-rendered pages under /admin and the ``flask owners`` CLI group."""
