"""Neon's serverless protocols: SQL over HTTP (``sql_over_http``) and WebSocket."""
