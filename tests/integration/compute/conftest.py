"""Registers the compute room's fixtures for these tests (until the root conftest does)."""

from tests.fixtures.compute import (compute_manager, compute_templates,  # noqa: F401
                                    make_compute_spec)
