"""Argon's MCP server: Neon's MCP tools over the control services.

``tools`` (names and schemas, the contract), ``handlers`` (what each tool does),
``server`` (the SDK server), ``http`` (``/mcp`` on the API port), ``bridge``
(``argon mcp`` on stdio).
"""
