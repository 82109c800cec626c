"""How Argon's own connections show in a compute's ``pg_stat_activity``, so that the
control plane does not count them as a client's sessions."""

# The application_name of Argon's control-plane sessions.
ARGON_APPLICATION_NAME = "argon"
# Leads the query that is the last one of a backend the proxy keeps for a direct door's
# next client (``argon.proxy.backend_reset``): idle with it, the backend is no session.
KEPT_LOGIN_MARKER = "/* argon: kept login */"
