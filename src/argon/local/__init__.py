"""``argon local``: a Neon Local-style fixed door on localhost.

An app always connects to ``postgres://neon:npg@localhost:5432/<db>`` (wire protocol,
with or without TLS), ``http://localhost:5432/sql`` (SQL over HTTP) or the WebSocket on
the same port; the door picks the database branch (a fixed one, an ephemeral child, or
one per git branch) and goes to Argon only through its public doors: the proxy with
TLS + SCRAM as the branch's owner role, and the HTTP ``/sql`` endpoint.
"""
