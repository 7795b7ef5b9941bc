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

/// The key that identifies who sent a request, if any: what the channel itself vouches for.
///
/// - a `customer_id`: the integration saw the customer signed in (the app, a chat widget on a
///   logged-in page), so it is the strongest identity;
/// - otherwise the channel's own address: the caller's number on `phone`, the sender on
///   `email`;
/// - anything else the request says (a phone number typed into a chat, an email in an app
///   form) is a *claim*: it is kept on the ticket, but it neither finds nor changes a customer
///   record, so whoever types someone's number sees nothing of theirs and renames nobody.
pub fn identity_key(c: &Customer, channel: &str) -> Option<String> {
    let keys = match_keys(c);
    let of = |prefix: &str| keys.iter().find(|k| k.starts_with(prefix)).cloned();
    of("id:").or_else(|| match channel {
        "phone" => of("phone:"),
        "email" => of("email:"),
        _ => None,
    })
}

/// Whether two requests come from the same customer: they share a customer id, a phone number
/// or an email address (normalised as in [`match_keys`]). A name never identifies anyone.
/// This decides whether a message may join a ticket it refers to.
pub fn same_customer(a: &Customer, b: &Customer) -> bool {
    let theirs = match_keys(b);
    match_keys(a).iter().any(|k| theirs.contains(k))
}

/// The service's country code: national numbers (`139…`, `010-…`) are read as Chinese.
pub const HOME_COUNTRY_CODE: &str = "86";

/// A phone number in E.164 (`+8613912345678`) when it can be placed: `+86 139…`, `0086139…`,
/// `86139…` and `139 1234 5678` are one number, and a landline's trunk 0 goes (`010-6552 9988`
/// is `+861065529988`). A number that fits none of these (a service number such as 95555 or
/// 400-820-1234, an extension) is kept as its digits, so it still matches itself.
pub fn normal_phone(p: &str) -> String {
    let trimmed = p.trim_start();
    let digits: String = p.chars().filter(char::is_ascii_digit).collect();
    if trimmed.starts_with('+') && digits.len() >= 8 {
        return format!("+{digits}");
    }
    if let Some(international) = digits.strip_prefix("00")
        && international.len() >= 8
    {
        return format!("+{international}");
    }
    let cc = HOME_COUNTRY_CODE;
    let mobile = |d: &str| d.len() == 11 && d.starts_with('1');
    if mobile(&digits) {
        return format!("+{cc}{digits}");
    }
    if let Some(rest) = digits.strip_prefix(cc)
        && mobile(rest)
    {
        return format!("+{digits}");
    }
    // A landline with its trunk prefix: 0 + area code (2–3 digits) + 7–8 digits.
    if digits.starts_with('0') && (10..=12).contains(&digits.len()) {
        return format!("+{cc}{}", &digits[1..]);
    }
    digits
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
            vec!["id:C1", "phone:+8613812345678", "email:zhang@example.com"]
        );
    }

    #[test]
    fn phone_numbers_are_one_person_in_any_notation() {
        for form in [
            "+86 139 1234 5678",
            "0086 13912345678",
            "8613912345678",
            "139-1234-5678",
            "(139) 1234 5678",
        ] {
            assert_eq!(normal_phone(form), "+8613912345678", "{form}");
        }
        assert_eq!(normal_phone("010-6552 9988"), "+861065529988");
        assert_eq!(normal_phone("+1 415 555 0100"), "+14155550100");
        assert_eq!(normal_phone("001 415 555 0100"), "+14155550100");
        // Service numbers stay as their digits.
        assert_eq!(normal_phone("95555"), "95555");
        assert_eq!(normal_phone("400-820-1234"), "4008201234");
    }

    #[test]
    fn only_the_channel_vouches_for_an_identity() {
        let c = Customer {
            phone: Some("13912345678".into()),
            email: Some("li@example.com".into()),
            ..Default::default()
        };
        assert_eq!(identity_key(&c, "phone").as_deref(), Some("phone:+8613912345678"));
        assert_eq!(identity_key(&c, "email").as_deref(), Some("email:li@example.com"));
        assert_eq!(identity_key(&c, "chat"), None);
        assert_eq!(identity_key(&c, "app"), None);
        let signed_in = Customer {
            customer_id: Some("C-9".into()),
            ..c
        };
        assert_eq!(identity_key(&signed_in, "chat").as_deref(), Some("id:C-9"));
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
