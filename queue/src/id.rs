//! Job ids: 26-character, time-ordered, URL-safe (Crockford base32 of a UUIDv7).

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new job id: sortable by creation time, unique across processes.
pub fn new_job_id() -> String {
    encode(uuid::Uuid::now_v7().as_u128())
}

fn encode(mut v: u128) -> String {
    let mut out = [0u8; 26];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    out.iter().map(|&b| b as char).collect()
}

/// True when `s` has the shape of an id this crate makes (or any short, printable token a foreign
/// producer chose): 1 to 64 characters of `[0-9A-Za-z_-]`.
pub fn is_valid_job_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_26_chars_and_sort_by_time() {
        let a = new_job_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_job_id();
        assert_eq!(a.len(), 26);
        assert!(a < b);
        assert!(is_valid_job_id(&a));
        assert!(!is_valid_job_id("a b"));
    }
}
