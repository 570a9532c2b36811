//! A readable device for a session, parsed from the User-Agent that opened
//! it, for a "where you're signed in" page.

/// What kind of device a User-Agent names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Desktop,
    Mobile,
    Appliance,
    Bot,
    Unknown,
}

/// Browser, operating system and kind; parts it cannot tell are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub browser: Option<String>,
    pub os: Option<String>,
    pub kind: DeviceKind,
}

impl Device {
    pub fn from_user_agent(user_agent: Option<&str>) -> Self {
        let unknown = Self {
            browser: None,
            os: None,
            kind: DeviceKind::Unknown,
        };
        let Some(parsed) = user_agent.and_then(|ua| woothee::parser::Parser::new().parse(ua))
        else {
            return unknown;
        };
        let known =
            |part: &str| (!part.is_empty() && !part.contains("UNKNOWN")).then(|| part.to_owned());
        let with_version = |name: &str, version: &str| {
            known(name).map(|name| match known(version) {
                Some(version) => format!("{name} {version}"),
                None => name,
            })
        };
        let kind = match parsed.category {
            "pc" => DeviceKind::Desktop,
            "smartphone" | "mobilephone" => DeviceKind::Mobile,
            "appliance" => DeviceKind::Appliance,
            "crawler" => DeviceKind::Bot,
            _ => DeviceKind::Unknown,
        };
        Self {
            browser: with_version(parsed.name, major(parsed.version)),
            // Windows names carry their version ("Windows 10"); the NT one adds nothing.
            os: if parsed.os.starts_with("Windows") {
                known(parsed.os)
            } else {
                with_version(parsed.os, parsed.os_version.as_ref())
            },
            kind,
        }
    }
}

/// `120.0.6099.71` → `120`: enough to tell browsers apart, no more.
fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_agents_read_as_people_would_say_them() {
        let chrome_mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
                          (KHTML, like Gecko) Chrome/120.0.6099.71 Safari/537.36";
        let device = Device::from_user_agent(Some(chrome_mac));
        assert_eq!(device.browser.as_deref(), Some("Chrome 120"));
        assert!(
            device.os.as_deref().unwrap().starts_with("Mac OSX"),
            "{device:?}"
        );
        assert_eq!(device.kind, DeviceKind::Desktop);

        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
        let device = Device::from_user_agent(Some(iphone));
        assert_eq!(device.kind, DeviceKind::Mobile);
        assert!(
            device.os.as_deref().unwrap().starts_with("iPhone"),
            "{device:?}"
        );

        let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        assert_eq!(Device::from_user_agent(Some(bot)).kind, DeviceKind::Bot);

        for nothing in [None, Some(""), Some("gatehouse-tests")] {
            let device = Device::from_user_agent(nothing);
            assert_eq!(device.kind, DeviceKind::Unknown, "{nothing:?}");
            assert_eq!(device.browser, None, "{nothing:?}");
        }
    }
}
