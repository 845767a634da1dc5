//! Who is asking: the client's address (behind trusted reverse proxies, the one they
//! forwarded) and the sign-up rate limits keyed on it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use crate::config::IpNet;

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// rightmost address in `X-Forwarded-For` that is not itself a trusted proxy (everything
/// left of it could have been written by the client). When every hop is trusted, the
/// leftmost one; when the header is missing or unreadable, the peer.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.ip();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if trusted.is_empty() || !is_trusted(peer) {
        return peer;
    }
    // Bytes, not `to_str`: a client's own junk (obs-text) in the header a proxy appends
    // to must not make the whole header, and so the client, disappear.
    let hops: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|h| !h.is_empty())
        .collect();
    let mut leftmost = None;
    for hop in hops.iter().rev() {
        let Some(ip) = std::str::from_utf8(hop).ok().and_then(parse_hop) else {
            // Garbage where an address should be: trust nothing further left.
            return leftmost.unwrap_or(peer);
        };
        if !is_trusted(ip) {
            return ip;
        }
        leftmost = Some(ip);
    }
    leftmost.unwrap_or(peer)
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    hop.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// Whether the request came through a proxy (any forwarding header), so that a loopback
/// peer may not be the real client.
pub fn is_forwarded(headers: &HeaderMap) -> bool {
    ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h))
}

/// The key a client is counted under: its address, or for IPv6 its /64 (one host
/// usually has a whole /64 to pick addresses from).
pub(super) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
        v4 => v4,
    }
}

/// Sign-ups allowed per client address and per email address in a window.
pub struct RateLimiter {
    window: Duration,
    per_client: u32,
    per_address: u32,
    clients: Buckets<IpAddr>,
    addresses: Buckets<String>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10 * 60),
            per_client: 5,
            per_address: 3,
            clients: Buckets::default(),
            addresses: Buckets::default(),
        }
    }
}

/// Counters per key, swept of expired windows now and then (never more than every
/// [`SWEEP_EVERY`], so a flood of new keys costs no scan per request). A map full of
/// live windows is cleared rather than let grow without bound or refuse everyone.
struct Buckets<K> {
    map: HashMap<K, (Instant, u32)>,
    last_sweep: Option<Instant>,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            last_sweep: None,
        }
    }
}

/// Keys kept before sweeping, and the most kept at all.
const SWEEP_FROM: usize = 100_000;
const MAX_KEYS: usize = 500_000;
const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl RateLimiter {
    /// Counts an attempt from `client`; when it is over the limit, how long until the
    /// client may try again.
    pub fn allow_client(&mut self, client: IpAddr) -> Result<(), Duration> {
        let (window, limit) = (self.window, self.per_client);
        count(&mut self.clients, client_key(client), window, limit)
    }

    /// Counts a confirmation email to `address` (so an address cannot be flooded from
    /// many clients).
    pub fn allow_address(&mut self, address: &str) -> Result<(), Duration> {
        let (window, limit) = (self.window, self.per_address);
        count(&mut self.addresses, address.to_lowercase(), window, limit)
    }
}

fn count<K: std::hash::Hash + Eq>(
    buckets: &mut Buckets<K>,
    key: K,
    window: Duration,
    limit: u32,
) -> Result<(), Duration> {
    let now = Instant::now();
    if buckets.map.len() > SWEEP_FROM
        && buckets
            .last_sweep
            .is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY)
    {
        buckets
            .map
            .retain(|_, (start, _)| now.duration_since(*start) < window);
        buckets.last_sweep = Some(now);
    }
    let map = &mut buckets.map;
    if map.len() >= MAX_KEYS && !map.contains_key(&key) {
        // Full of live windows (a flood from very many addresses): start over rather
        // than refuse every newcomer; the per-address limit still guards each mailbox.
        tracing::warn!(
            keys = map.len(),
            "sign-up rate limits reset: too many clients at once"
        );
        map.clear();
    }
    let entry = map.entry(key).or_insert((now, 0));
    if now.duration_since(entry.0) >= window {
        *entry = (now, 0);
    }
    entry.1 = entry.1.saturating_add(1);
    if entry.1 <= limit {
        Ok(())
    } else {
        Err(window.saturating_sub(now.duration_since(entry.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| IpNet::parse(n).unwrap()).collect()
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxy: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&["198.51.100.7"]);
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(stranger, &h, &trusted),
            stranger.ip(),
            "not a proxy of ours"
        );
        assert_eq!(
            client_ip(proxy, &h, &[]),
            proxy.ip(),
            "no proxies configured"
        );
        // A client writing its own header cannot pick its address: the rightmost
        // untrusted hop is the one our proxy saw.
        let spoofed = headers(&["1.1.1.1, 198.51.100.7"]);
        assert_eq!(
            client_ip(proxy, &spoofed, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let chain = headers(&["198.51.100.7", "10.0.0.9"]);
        assert_eq!(
            client_ip(proxy, &chain, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(proxy, &headers(&["10.1.1.1"]), &trusted),
            "10.1.1.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(proxy, &headers(&["junk"]), &trusted), proxy.ip());
        assert_eq!(
            client_ip(proxy, &headers(&["[2001:db8::1]:443"]), &trusted),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy.ip());
        // The client's own junk, kept by a proxy that appends, does not hide them.
        let mut junk = HeaderMap::new();
        junk.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.7").unwrap(),
        );
        assert_eq!(
            client_ip(proxy, &junk, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let mut l = RateLimiter::default();
        for i in 0..5u16 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i));
            assert!(l.allow_client(ip).is_ok());
        }
        let same_64 = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9));
        assert!(l.allow_client(same_64).is_err());
        let other_64 = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert!(l.allow_client(other_64).is_ok());
    }

    #[test]
    fn the_limiter_says_how_long_to_wait() {
        let mut l = RateLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert!(l.allow_client(ip).is_ok());
        }
        let wait = l.allow_client(ip).unwrap_err();
        assert!(wait > Duration::from_secs(590) && wait <= Duration::from_secs(600));
        assert!(l.allow_client("192.0.2.2".parse().unwrap()).is_ok());
    }
}
