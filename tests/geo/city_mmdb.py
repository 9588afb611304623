"""Write the small GeoLite2-City-format database the geolocation tests read.

Usage: city_mmdb.py OUT.mmdb

203.0.113.0/24 (TEST-NET-3) is Montreal, Quebec, Canada, with coordinates and a postal code the
fleet must never store; 2001:db8:1::/48 is Lyon, France (no subdivision). Every other address is
absent from the database.
"""

import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet


def main(out: str) -> None:
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-City",
        languages=["en", "fr"],
        description="Celeriac test City database",
    )
    writer.insert_network(
        IPSet(["203.0.113.0/24"]),
        {
            "city": {"geoname_id": 6077243, "names": {"en": "Montreal", "fr": "Montréal"}},
            "subdivisions": [{"geoname_id": 6115047, "iso_code": "QC", "names": {"en": "Quebec", "fr": "Québec"}}],
            "country": {"geoname_id": 6251999, "iso_code": "CA", "names": {"en": "Canada"}},
            "continent": {"code": "NA", "names": {"en": "North America"}},
            "location": {"latitude": 45.5088, "longitude": -73.5878, "accuracy_radius": 5, "time_zone": "America/Toronto"},
            "postal": {"code": "H2X"},
        },
    )
    writer.insert_network(
        IPSet(["2001:db8:1::/48"]),
        {
            "city": {"names": {"en": "Lyon"}},
            "country": {"iso_code": "FR", "names": {"en": "France"}},
            "location": {"latitude": 45.75, "longitude": 4.85},
        },
    )
    writer.to_db_file(out)


if __name__ == "__main__":
    main(sys.argv[1])
