//! A posted form (`application/x-www-form-urlencoded`), where a name may repeat (`ids=a&ids=b`).

/// The fields of a posted form, in order.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parse a form body; undecodable bytes become U+FFFD, as browsers send UTF-8.
    pub fn parse(body: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_are_all_kept() {
        let f = Form::parse(b"csrf=x&ids=a&ids=b%20c&action=requeue");
        assert_eq!(f.get("csrf"), Some("x"));
        assert_eq!(f.all("ids"), ["a", "b c"]);
        assert_eq!(f.get("nope"), None);
    }
}
