//! The user-agent rule: what a user agent says about the device (woothee, a maintained UA
//! and crawler list), shared by the tracking path and `enhance_session_async`.

/// What a user agent says about the device, from the woothee parser (a maintained UA and crawler list).
pub fn parse_user_agent(ua: &str) -> serde_json::Value {
    let parsed = woothee::parser::Parser::new().parse(ua);
    match parsed {
        Some(r) => serde_json::json!({
            "device_type": match r.category { "smartphone" => "mobile", "mobilephone" => "mobile", "pc" => "desktop", other => other },
            "browser": r.name,
            "browser_version": r.version,
            "os": r.os,
            "os_version": r.os_version,
            "vendor": r.vendor,
            "is_bot": r.category == "crawler",
        }),
        None => serde_json::json!({
            "device_type": "unknown", "browser": "", "browser_version": "", "os": "", "os_version": "",
            "vendor": "", "is_bot": false,
        }),
    }
}
