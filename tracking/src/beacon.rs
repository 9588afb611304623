//! The page's beacon: scroll depth and time on page of one anonymous view, sent by the browser
//! when the page is hidden or left, kept in Redis until the view's row is written.
//!
//! The browser cannot hold the API token, so the route is public; what it may touch is bounded by
//! a view token the producer signs: `{view_id}.{signature}`, the signature being the first 32 hex
//! digits of HMAC-SHA-256 over `beacon:{view_id}` keyed with the API token. Only a page the site
//! rendered can report, only on its own view, and a made-up id writes nothing. Without an API
//! token (an open API) the id alone is taken.

use domain::documents::Beacon;
use domain::keys::beacon_key;
use hmac::{Hmac, Mac};
use redis::AsyncCommands;
use serde::Deserialize;
use sha2::Sha256;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Tracker;
use crate::validate::{TrackError, invalid};

/// Hex digits of the signature in a view token.
const SIGNATURE_HEX: usize = 32;

/// How long a beacon waits in Redis for its view's row: as long as the view itself may wait in
/// the buffer (`ANON_BUFFER_SECONDS`' default, a day).
const BEACON_TTL_SECONDS: u64 = 86_400;

/// What a page's beacon sends (`navigator.sendBeacon`, any content type: the body is read as JSON).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct BeaconReport {
    /// The view token the page was rendered with: `{view_id}.{signature}`.
    #[schema(max_length = 100)]
    pub t: String,
    /// Deepest point the visitor scrolled to, in percent of the page's height (0 to 100).
    #[schema(minimum = 0, maximum = 100)]
    pub scroll: i64,
    /// Seconds the page was visible (0 to 86,400).
    #[schema(minimum = 0, maximum = 86400)]
    pub seconds: i64,
}

fn mac(key: &[u8], view_id: &Uuid) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(format!("beacon:{view_id}").as_bytes());
    mac
}

/// The view token for `view_id` under `key` (the API token), as the producer renders it.
pub fn view_token(key: &[u8], view_id: &Uuid) -> String {
    let sig = mac(key, view_id).finalize().into_bytes();
    format!("{view_id}.{}", &hex::encode(sig)[..SIGNATURE_HEX])
}

/// The view a token names, once its signature is checked (in constant time) against `key`;
/// without a key, the id alone.
pub fn verify(key: Option<&[u8]>, token: &str) -> Result<Uuid, TrackError> {
    let (id, sig) = token.split_once('.').unwrap_or((token, ""));
    let view_id = Uuid::parse_str(id).map_err(|_| invalid("t", "is not a view token"))?;
    let Some(key) = key else {
        return Ok(view_id);
    };
    let sig = (sig.len() == SIGNATURE_HEX)
        .then(|| hex::decode(sig).ok())
        .flatten()
        .ok_or_else(|| invalid("t", "is not a signed view token"))?;
    mac(key, &view_id)
        .verify_truncated_left(&sig)
        .map_err(|_| invalid("t", "is not a view token of this site"))?;
    Ok(view_id)
}

impl Tracker {
    /// Keep what a page's beacon reported until its view's row is written (the latest report of
    /// a view wins: the page sends its running maximum and total).
    pub async fn record_beacon(
        &self,
        key: Option<&[u8]>,
        report: &BeaconReport,
    ) -> Result<(), TrackError> {
        let view_id = verify(key, &report.t)?;
        let scroll = i16::try_from(report.scroll)
            .ok()
            .filter(|s| (0..=100).contains(s))
            .ok_or_else(|| invalid("scroll", "must be 0 to 100"))?;
        let seconds = i32::try_from(report.seconds)
            .ok()
            .filter(|s| (0..=Beacon::MAX_SECONDS).contains(s))
            .ok_or_else(|| invalid("seconds", "must be 0 to 86400"))?;
        let beacon = Beacon {
            scroll_depth_percent: scroll,
            seconds,
        };
        let _: () = self
            .redis
            .clone()
            .set_ex(beacon_key(&view_id), beacon.to_redis(), BEACON_TTL_SECONDS)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_keys_signature_on_that_view_passes() {
        let (key, id) = (b"token".as_slice(), Uuid::from_u128(42));
        let token = view_token(key, &id);
        assert_eq!(verify(Some(key), &token).unwrap(), id);
        // Another key, another view, a cut or altered signature, no signature.
        assert!(verify(Some(b"other"), &token).is_err());
        let other = view_token(key, &Uuid::from_u128(43));
        let forged = format!("{id}.{}", other.split_once('.').unwrap().1);
        assert!(verify(Some(key), &forged).is_err());
        assert!(verify(Some(key), &token[..token.len() - 1]).is_err());
        assert!(verify(Some(key), &id.to_string()).is_err());
        // An open API takes the id alone; garbage is refused either way.
        assert_eq!(verify(None, &id.to_string()).unwrap(), id);
        assert!(verify(None, "../../x").is_err());
    }

    /// The Django package signs the same way (`celeriac_django.beacon.view_token`).
    #[test]
    fn a_known_token() {
        let id = Uuid::parse_str("00000000-0000-0000-0000-00000000002a").unwrap();
        assert_eq!(
            view_token(b"token", &id),
            format!("{id}.c2a0f218c42c4f9a4f8e4435f4e78de7")
        );
    }
}
