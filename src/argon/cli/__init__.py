"""The ``argon`` command line."""
