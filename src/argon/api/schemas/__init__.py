"""Wire models of Neon's API v2, named and shaped as in ``public-v2-for-users.gen.yaml``.

Responses carry every field the spec marks required, with a neutral value where Argon
has no real one (listed in the API description, ``argon.api.app.DESCRIPTION``).
Requests accept every field the spec defines and reject fields it does not, so a typo
gets a 400 instead of being ignored.
"""
