"""One router per Neon API tag; each route parses, makes one service call, renders."""
