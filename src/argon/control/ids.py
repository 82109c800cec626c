"""Identifiers in Neon's formats.

project ``adjective-noun-12345678``; branch ``br-adjective-noun-a1b2c3d4``; endpoint
``ep-adjective-noun-a1b2c3d4``; operations are UUIDs; generated role passwords start
with ``npg_`` as Neon's do.
"""

from __future__ import annotations

import re
import secrets
import string
import uuid

ADJECTIVES = (
    "aged", "ancient", "autumn", "billowing", "bitter", "black", "blue", "bold", "broad",
    "broken", "calm", "cold", "cool", "crimson", "curly", "damp", "dark", "dawn",
    "delicate", "divine", "dry", "empty", "falling", "fancy", "flat", "floral", "fragrant",
    "frosty", "gentle", "green", "hidden", "holy", "icy", "jolly", "late", "lingering",
    "little", "lively", "long", "lucky", "misty", "morning", "muddy", "mute", "nameless",
    "noisy", "odd", "old", "orange", "patient", "plain", "polished", "proud", "purple",
    "quiet", "rapid", "raspy", "red", "restless", "rough", "round", "royal", "shiny",
    "shrill", "shy", "silent", "small", "snowy", "soft", "solitary", "sparkling", "spring",
    "square", "steep", "still", "summer", "super", "sweet", "throbbing", "tight", "tiny",
    "twilight", "wandering", "weathered", "white", "wild", "winter", "wispy", "withered",
    "yellow", "young",
)
NOUNS = (
    "art", "band", "bar", "base", "bird", "block", "boat", "bonus", "bread", "breeze",
    "brook", "bush", "butterfly", "cake", "cell", "cherry", "cloud", "credit", "darkness",
    "dawn", "dew", "disk", "dream", "dust", "feather", "field", "fire", "firefly", "flower",
    "fog", "forest", "frog", "frost", "glade", "glitter", "grass", "hall", "hat", "haze",
    "heart", "hill", "king", "lab", "lake", "leaf", "limit", "math", "meadow", "mode",
    "moon", "morning", "mountain", "mouse", "mud", "night", "paper", "pine", "poetry",
    "pond", "queen", "rain", "recipe", "resonance", "rice", "river", "salad", "scene",
    "sea", "shadow", "shape", "silence", "sky", "smoke", "snow", "snowflake", "sound",
    "star", "sun", "sunset", "surf", "term", "thunder", "tooth", "tree", "truth", "union",
    "unit", "violet", "voice", "water", "waterfall", "wave", "wildflower", "wind", "wood",
)

_ALNUM = string.ascii_lowercase + string.digits

PROJECT_ID_RE = re.compile(r"^[a-z]+-[a-z]+-\d{8}$")
BRANCH_ID_RE = re.compile(r"^br-[a-z]+-[a-z]+-[a-z0-9]{8}$")
ENDPOINT_ID_RE = re.compile(r"^ep-[a-z]+-[a-z]+-[a-z0-9]{8}$")


def _words() -> str:
    return f"{secrets.choice(ADJECTIVES)}-{secrets.choice(NOUNS)}"


def _suffix(n: int = 8) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def project_id() -> str:
    return f"{_words()}-{secrets.randbelow(10**8):08d}"


def branch_id() -> str:
    return f"br-{_words()}-{_suffix()}"


def endpoint_id() -> str:
    return f"ep-{_words()}-{_suffix()}"


def timeline_id() -> str:
    return f"tl-{secrets.token_hex(8)}"


def operation_id() -> str:
    return str(uuid.uuid4())


def role_password() -> str:
    return "npg_" + "".join(secrets.choice(string.ascii_letters + string.digits)
                            for _ in range(12))


def api_key_secret() -> str:
    # Neon's format: ``napi_`` and 64 random characters; only its SHA-256 is stored.
    # Keys made before the prefix (64 characters, no prefix) keep working.
    return "napi_" + "".join(secrets.choice(_ALNUM) for _ in range(64))
