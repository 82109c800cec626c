"""Regions: the one local region, under its own id and under Neon's region ids.

An Argon install runs on one machine, so there is one place data lives.  Scripts,
Terraform configs and Neon's tools pass Neon's region ids (``aws-us-east-2``); Argon
accepts each of them as another name of the local region, and a project keeps the id it
was created with (its ``region_id`` echoes it), so a config written for Neon reads back
unchanged.  Anything else is refused with the list of accepted ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon.errors import InvalidInput

LOCAL_REGION = "local"


@dataclass(frozen=True)
class Region:
    region_id: str
    name: str
    geo_lat: str
    geo_long: str


# Neon's regions (neon.com/docs/introduction/regions), with its names and rough places.
NEON_REGIONS: tuple[Region, ...] = (
    Region("aws-us-east-1", "AWS US East (N. Virginia)", "38.9940541", "-77.4524237"),
    Region("aws-us-east-2", "AWS US East (Ohio)", "39.9612", "-82.9988"),
    Region("aws-us-west-2", "AWS US West (Oregon)", "45.5944749", "-121.1786299"),
    Region("aws-eu-central-1", "AWS Europe (Frankfurt)", "50.1109", "8.6821"),
    Region("aws-eu-west-2", "AWS Europe (London)", "51.5072", "-0.1276"),
    Region("aws-ap-southeast-1", "AWS Asia Pacific (Singapore)", "1.3521", "103.8198"),
    Region("aws-ap-southeast-2", "AWS Asia Pacific (Sydney)", "-33.8688", "151.2093"),
    Region("aws-sa-east-1", "AWS South America (São Paulo)", "-23.5558", "-46.6396"),
    Region("azure-eastus2", "Azure East US 2 (Virginia)", "36.6681", "-78.3889"),
    Region("azure-westus3", "Azure West US 3 (Arizona)", "33.4484", "-112.0740"),
    Region("azure-gwc", "Azure Germany West Central (Frankfurt)", "50.1109", "8.6821"),
)
LOCAL = Region(LOCAL_REGION, "Local (this machine)", "0", "0")
ALL_REGIONS: tuple[Region, ...] = (LOCAL, *NEON_REGIONS)
_IDS = {r.region_id for r in ALL_REGIONS}


def resolve(region_id: str | None) -> str:
    """The region id a new project keeps: the one asked for when it names the local
    region (``local`` or one of Neon's ids), ``local`` when none was given."""
    if region_id is None:
        return LOCAL_REGION
    if region_id not in _IDS:
        known = ", ".join(sorted(_IDS))
        raise InvalidInput(f"region {region_id!r} does not exist; this install has one "
                           f"region, {LOCAL_REGION!r}, also accepted under Neon's ids: "
                           f"{known}")
    return region_id


def listing() -> list[dict[str, object]]:
    """``GET /regions``: every accepted id, the local one first and marked default."""
    return [{"region_id": r.region_id, "name": r.name, "default": r is LOCAL,
             "geo_lat": r.geo_lat, "geo_long": r.geo_long} for r in ALL_REGIONS]
