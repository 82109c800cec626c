"""Test plugins: one fixture module per room, loaded as pytest plugins."""

pytest_plugins = [
    "tests.fixtures.common",
    "tests.fixtures.pgserver",
    "tests.fixtures.metadata_pg",   # before argon_env, which uses it
    "tests.fixtures.argon_env",
    "tests.fixtures.storage",
    "tests.fixtures.compute",
    "tests.fixtures.proxy",
    "tests.fixtures.port443",
    "tests.fixtures.browser",
    "tests.fixtures.object_store",
]
