//! Who the client is behind trusted reverse proxies: the pure rule, from the
//! TCP peer and the forwarding headers, with no I/O.
//!
//! Each proxy appends the address it received the request from, so the
//! chain reads client → … → last proxy, and only the entries appended by
//! proxies we trust are believed. Walking from the right, the first entry
//! that is not a trusted proxy is the client; anything to its left was
//! written by that client and is never read. An entry that must be read but
//! cannot be parsed makes the whole chain worthless: the client is then the
//! peer itself (garbage is never trusted).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The client's address: `peer` unless `peer` is a trusted proxy, in which
/// case it comes from `x_forwarded_for` (every `X-Forwarded-For` line, in
/// order) or, when there is none, from `forwarded` (RFC 7239, every line).
pub fn client_address(
    peer: IpAddr,
    trusted: &[IpNet],
    x_forwarded_for: &[&str],
    forwarded: &[&str],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let chain = if x_forwarded_for.is_empty() {
        forwarded
            .iter()
            .flat_map(|line| split_list(line))
            .map(forwarded_for)
            .collect::<Vec<_>>()
    } else {
        x_forwarded_for
            .iter()
            .flat_map(|line| split_list(line))
            .map(parse_node)
            .collect()
    };
    pick(peer, trusted, &chain)
}

/// The rightmost entry that is not trusted, the leftmost if all are, or
/// `peer` if an entry on the way is unreadable or there are none.
fn pick(peer: IpAddr, trusted: &[IpNet], chain: &[Option<IpAddr>]) -> IpAddr {
    let mut leftmost = peer;
    for entry in chain.iter().rev() {
        let Some(ip) = *entry else { return peer };
        if !is_trusted(ip, trusted) {
            return ip;
        }
        leftmost = ip;
    }
    leftmost
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// A comma-separated list's entries, trimmed. Commas inside a quoted
/// string (legal in `Forwarded`) stay in their entry.
fn split_list(line: &str) -> Vec<&str> {
    let mut entries = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                entries.push(line[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(line[start..].trim());
    entries
}

/// The `for=` of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in element.split(';') {
        let (name, value) = pair.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            found = Some(unquote(value.trim())?);
        }
    }
    parse_node(found?)
}

/// A quoted string's content; a bare token as is. Escapes are refused:
/// no address needs one.
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').filter(|v| !v.contains(['"', '\\'])),
        None => Some(value),
    }
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:80`. `unknown` and obfuscated
/// identifiers name no address, so they are unreadable here.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<std::net::Ipv6Addr>().ok())
        .map(|ip| IpAddr::V6(ip).to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|s| s.parse().unwrap_or_else(|_| IpNet::from(ip(s))))
            .collect()
    }

    const PROXY: &str = "127.0.0.1";

    fn xff(lines: &[&str]) -> IpAddr {
        client_address(ip(PROXY), &nets(&["127.0.0.1", "10.0.0.0/8"]), lines, &[])
    }

    fn fwd(lines: &[&str]) -> IpAddr {
        client_address(ip(PROXY), &nets(&["127.0.0.1", "10.0.0.0/8"]), &[], lines)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let client = client_address(
            ip("127.0.0.2"),
            &nets(&["127.0.0.1"]),
            &["198.51.100.1"],
            &["for=198.51.100.2"],
        );
        assert_eq!(client, ip("127.0.0.2"));
        assert_eq!(
            client_address(ip(PROXY), &[], &["198.51.100.1"], &[]),
            ip(PROXY)
        );
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        assert_eq!(xff(&["198.51.100.7"]), ip("198.51.100.7"));
        assert_eq!(
            xff(&["203.0.113.9, 198.51.100.7, 127.0.0.1"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            xff(&["203.0.113.9", "198.51.100.7, 10.1.2.3"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn what_the_client_wrote_left_of_itself_is_never_read() {
        assert_eq!(
            xff(&["garbage, 198.51.100.7, 127.0.0.1"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn all_trusted_means_the_leftmost() {
        assert_eq!(xff(&["10.0.0.5, 127.0.0.1"]), ip("10.0.0.5"));
    }

    #[test]
    fn garbage_where_the_client_should_be_means_the_peer() {
        for line in [
            "nonsense",
            "198.51.100.7, ",
            ", 127.0.0.1",
            "198.51.100.7,,127.0.0.1",
            "unknown",
        ] {
            assert_eq!(xff(&[line]), ip(PROXY), "{line}");
        }
        assert_eq!(fwd(&["for=unknown"]), ip(PROXY));
        assert_eq!(fwd(&["proto=https"]), ip(PROXY));
        assert_eq!(fwd(&["for=1.2.3.4;for=5.6.7.8"]), ip(PROXY));
        assert_eq!(fwd(&["for=\"[2001:db8::1\""]), ip(PROXY));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        assert_eq!(xff(&["198.51.100.7:4711"]), ip("198.51.100.7"));
        assert_eq!(xff(&["[2001:db8::1]:4711"]), ip("2001:db8::1"));
        assert_eq!(xff(&["2001:db8::1"]), ip("2001:db8::1"));
        assert_eq!(xff(&["::ffff:198.51.100.7"]), ip("198.51.100.7"));
        // A mapped peer is the same trusted proxy.
        let peer = ip("::ffff:127.0.0.1");
        assert_eq!(
            client_address(peer, &nets(&[PROXY]), &["198.51.100.7"], &[]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        assert_eq!(fwd(&["for=198.51.100.7"]), ip("198.51.100.7"));
        assert_eq!(
            fwd(&["For=\"[2001:db8:cafe::17]:4711\";proto=https, for=127.0.0.1"]),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            fwd(&["for=203.0.113.9", "for=198.51.100.7;by=10.0.0.1"]),
            ip("198.51.100.7")
        );
        // A quoted comma stays inside its element.
        assert_eq!(
            fwd(&["for=198.51.100.7;host=\"a,b\", for=10.0.0.2"]),
            ip("198.51.100.7")
        );
        // X-Forwarded-For wins when both came.
        let both = client_address(
            ip(PROXY),
            &nets(&[PROXY]),
            &["198.51.100.1"],
            &["for=198.51.100.2"],
        );
        assert_eq!(both, ip("198.51.100.1"));
    }

    #[test]
    fn no_header_from_a_trusted_peer_is_the_peer() {
        assert_eq!(xff(&[]), ip(PROXY));
    }
}
