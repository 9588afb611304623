//! City geolocation of a visitor's address (`GEOIP_DATABASE`: a GeoLite2, GeoIP2 or DB-IP City
//! file), for `location_data` on signed-in and anonymous sessions: city, region and country,
//! never coordinates.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The database could not be used.
#[derive(Debug, thiserror::Error)]
#[error("GEOIP_DATABASE={path}: {source}")]
pub struct GeoError {
    path: String,
    #[source]
    source: maxminddb::MaxMindDbError,
}

/// An opened City database (read into memory once; lookups take microseconds).
pub struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("database_type", &self.reader.metadata.database_type)
            .finish()
    }
}

/// Where an address is, as stored: only what names a place no finer than a city.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    /// City name (English), if the database knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// First-level subdivision (state, province), English name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Its ISO 3166-2 code without the country (`QC`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_code: Option<String>,
    /// Country, English name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// ISO 3166-1 alpha-2 code (`CA`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
}

/// The parts of a City record read (coordinates, postal codes and the rest are never decoded).
#[derive(Deserialize)]
struct Record {
    city: Option<Place>,
    subdivisions: Option<Vec<Place>>,
    country: Option<Place>,
}

#[derive(Deserialize)]
struct Place {
    iso_code: Option<String>,
    names: Option<BTreeMap<String, String>>,
}

impl Place {
    fn english(&self) -> Option<String> {
        self.names.as_ref()?.get("en").cloned()
    }
}

impl GeoIp {
    /// Read the database at `path`.
    pub fn open(path: &Path) -> Result<Self, GeoError> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|source| GeoError {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self { reader })
    }

    /// The database's type, as its metadata names it (`GeoLite2-City`).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata.database_type
    }

    /// Where `ip` is: `None` for an address that does not parse, one the database does not
    /// hold, or a record it cannot decode (logged at debug, never failing the caller).
    pub fn locate(&self, ip: &str) -> Option<Location> {
        let addr: IpAddr = ip.parse().ok()?;
        let record = match self.reader.lookup(addr).and_then(|r| r.decode::<Record>()) {
            Ok(record) => record?,
            Err(e) => {
                tracing::debug!(error = %e, "GeoIP record not decoded");
                return None;
            }
        };
        let region = record.subdivisions.as_ref().and_then(|s| s.first());
        let location = Location {
            city: record.city.as_ref().and_then(Place::english),
            region: region.and_then(Place::english),
            region_code: region.and_then(|r| r.iso_code.clone()),
            country: record.country.as_ref().and_then(Place::english),
            country_code: record.country.as_ref().and_then(|c| c.iso_code.clone()),
        };
        (location != Location::default()).then_some(location)
    }

    /// Where `ip` is as a `location_data` JSON object, when a database is set and finds it.
    pub fn place(geo: Option<&Self>, ip: Option<&str>) -> Option<serde_json::Value> {
        geo.zip(ip)
            .and_then(|(g, ip)| g.locate(ip))
            .and_then(|l| serde_json::to_value(l).ok())
    }
}

/// The database `GEOIP_DATABASE` names, opened; none when unset. Says which once, at start.
pub fn open_configured(
    settings: &domain::config::Settings,
) -> Result<Option<Arc<GeoIp>>, GeoError> {
    let Some(path) = settings.geoip_database.as_deref() else {
        tracing::info!("GEOIP_DATABASE is unset: sessions are stored without a location");
        return Ok(None);
    };
    let geo = GeoIp::open(path)?;
    tracing::info!(
        database_type = geo.database_type(),
        "GeoIP database open: sessions get their city, region and country"
    );
    Ok(Some(Arc::new(geo)))
}
