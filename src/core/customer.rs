//! Who a request comes from: the customer as a channel describes them, and the keys that
//! identify the same person across requests.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Standard,
    Vip,
    Enterprise,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "standard",
            Tier::Vip => "vip",
            Tier::Enterprise => "enterprise",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
}

impl Customer {
    pub fn tier(&self) -> Tier {
        self.tier.unwrap_or(Tier::Standard)
    }
}

/// The keys a customer can be found by, most reliable first.
pub fn match_keys(c: &Customer) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(id) = c.customer_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        keys.push(format!("id:{id}"));
    }
    if let Some(p) = c.phone.as_deref().map(normal_phone).filter(|s| s.len() >= 5) {
        keys.push(format!("phone:{p}"));
    }
    if let Some(e) = c
        .email
        .as_deref()
        .map(|e| e.trim().to_lowercase())
        .filter(|s| s.contains('@'))
    {
        keys.push(format!("email:{e}"));
    }
    keys
}

/// Whether two requests come from the same customer: they share a customer id, a phone number
/// or an email address (normalised as in [`match_keys`]). A name never identifies anyone.
/// This decides whether a message may join a ticket it refers to.
pub fn same_customer(a: &Customer, b: &Customer) -> bool {
    let theirs = match_keys(b);
    match_keys(a).iter().any(|k| theirs.contains(k))
}

/// Digits only; a +86 country code is dropped so local and international forms match.
pub fn normal_phone(p: &str) -> String {
    let digits: String = p.chars().filter(char::is_ascii_digit).collect();
    match digits.strip_prefix("86") {
        Some(rest) if p.trim_start().starts_with('+') && rest.len() == 11 => rest.to_owned(),
        _ => digits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise_phone_and_email() {
        let c = Customer {
            customer_id: Some(" C1 ".into()),
            phone: Some("+86 138-1234-5678".into()),
            email: Some("Zhang@Example.com".into()),
            ..Default::default()
        };
        assert_eq!(
            match_keys(&c),
            vec!["id:C1", "phone:13812345678", "email:zhang@example.com"]
        );
        assert_eq!(normal_phone("138 1234 5678"), "13812345678");
    }

    #[test]
    fn the_same_customer_shares_an_id_a_phone_or_an_email_never_just_a_name() {
        let phone = |p: &str| Customer {
            phone: Some(p.into()),
            ..Default::default()
        };
        let email = |e: &str| Customer {
            email: Some(e.into()),
            name: Some("Wang".into()),
            ..Default::default()
        };
        assert!(same_customer(&phone("+86 138 1234 5678"), &phone("13812345678")));
        assert!(!same_customer(&phone("13812345678"), &phone("13912345678")));
        assert!(same_customer(&email("A@x.com"), &email("a@X.com")));
        assert!(!same_customer(&email("a@x.com"), &email("b@x.com")));
        let both = Customer {
            phone: Some("13812345678".into()),
            email: Some("a@x.com".into()),
            ..Default::default()
        };
        assert!(same_customer(&both, &email("a@x.com")));
        let named = |n: &str| Customer {
            name: Some(n.into()),
            ..Default::default()
        };
        assert!(!same_customer(&named("Wang"), &named("Wang")));
    }
}
