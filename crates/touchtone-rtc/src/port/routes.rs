//! Which call a datagram on a shared port is for.

use std::collections::HashMap;
use std::net::SocketAddr;

/// Remote addresses one call may be reached from (ICE candidate pairs that checked).
const MAX_ADDRS_PER_CALL: usize = 8;

/// The calls of a port by key, with the ufrag and remote addresses that lead to each.
pub(super) struct Routes<T> {
    by_ufrag: HashMap<String, u64>,
    by_addr: HashMap<SocketAddr, u64>,
    calls: HashMap<u64, Route<T>>,
}

/// One call's way in, and what the port keeps for it.
pub(super) struct Route<T> {
    ufrag: String,
    addrs: Vec<SocketAddr>,
    /// The call's state at the port.
    pub(super) call: T,
}

impl<T> Default for Routes<T> {
    fn default() -> Self {
        Routes {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            calls: HashMap::new(),
        }
    }
}

impl<T> Routes<T> {
    /// Adds call `key`, reached first by STUN checks for `ufrag`.
    pub(super) fn insert(&mut self, key: u64, ufrag: String, call: T) {
        self.by_ufrag.insert(ufrag.clone(), key);
        self.calls.insert(
            key,
            Route {
                ufrag,
                addrs: Vec::new(),
                call,
            },
        );
    }

    /// Forgets call `key` and every way to it; returns its ufrag, its remote addresses and what the port
    /// kept for it, to be [`insert_with`](Self::insert_with) elsewhere.
    pub(super) fn take(&mut self, key: u64) -> Option<(String, Vec<SocketAddr>, T)> {
        let r = self.calls.remove(&key)?;
        self.by_ufrag.remove(&r.ufrag);
        for a in &r.addrs {
            self.by_addr.remove(a);
        }
        Some((r.ufrag, r.addrs, r.call))
    }

    /// Adds call `key` reached by STUN checks for `ufrag` and already from `addrs`.
    pub(super) fn insert_with(&mut self, key: u64, ufrag: String, addrs: Vec<SocketAddr>, call: T) {
        for a in &addrs {
            self.by_addr.insert(*a, key);
        }
        self.by_ufrag.insert(ufrag.clone(), key);
        self.calls.insert(key, Route { ufrag, addrs, call });
    }

    /// What the port keeps for call `key`.
    pub(super) fn get_mut(&mut self, key: u64) -> Option<&mut T> {
        self.calls.get_mut(&key).map(|r| &mut r.call)
    }

    /// Every call's key and state.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut T)> {
        self.calls.iter_mut().map(|(k, r)| (*k, &mut r.call))
    }

    /// Whether datagrams from `source` go to a call here.
    pub(super) fn knows(&self, source: SocketAddr) -> bool {
        self.by_addr.contains_key(&source)
    }

    /// How many calls there are.
    pub(super) fn len(&self) -> usize {
        self.calls.len()
    }

    /// The call a datagram from `source` is for, learning the address from a STUN check.
    pub(super) fn route(&mut self, source: SocketAddr, data: &[u8]) -> Option<(u64, &mut T)> {
        let key = match self.by_addr.get(&source) {
            Some(key) => *key,
            None => {
                let ufrag = stun_local_ufrag(data)?;
                let key = *self.by_ufrag.get(ufrag)?;
                let route = self.calls.get_mut(&key)?;
                if route.addrs.len() >= MAX_ADDRS_PER_CALL {
                    let old = route.addrs.remove(0);
                    self.by_addr.remove(&old);
                }
                route.addrs.push(source);
                self.by_addr.insert(source, key);
                key
            }
        };
        Some((key, &mut self.calls.get_mut(&key)?.call))
    }
}

/// The local ufrag of a STUN Binding request's USERNAME (`local:remote`, RFC 8445 7.2.2), if `data` is one.
pub(super) fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    // Header: type (Binding request 0x0001), length, magic cookie, transaction id.
    if data.len() < 20 || data[0..2] != [0x00, 0x01] || data[4..8] != [0x21, 0x12, 0xa4, 0x42] {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[at], body[at + 1]]);
        let alen = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + alen)?;
        if typ == 0x0006 {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        at += 4 + alen.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &str) -> Vec<u8> {
        let mut attr = vec![0x00, 0x06];
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn the_local_ufrag_is_read_from_a_binding_request() {
        assert_eq!(stun_local_ufrag(&binding("abcd:wxyz")), Some("abcd"));
        assert_eq!(stun_local_ufrag(&binding("x")), Some("x"));
        // Not a binding request, or cut short: nothing.
        // A Binding success response (0x0101) carries no check to route by.
        let mut resp = binding("abcd:wxyz");
        resp[0] = 0x01;
        assert_eq!(stun_local_ufrag(&resp), None);
        assert_eq!(stun_local_ufrag(&binding("abcd:wxyz")[..30]), None);
        assert_eq!(stun_local_ufrag(b"\x80\x00 rtp"), None);
    }

    #[test]
    fn routes_learn_addresses_from_checks_and_forget_them_with_the_call() {
        let mut r = Routes::default();
        r.insert(1, "abcd".into(), ());
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let key = |r: &mut Routes<()>, a, d: &[u8]| r.route(a, d).map(|(k, _)| k);
        assert_eq!(
            key(&mut r, a, b"\x80junk"),
            None,
            "unknown address, not STUN"
        );
        assert_eq!(key(&mut r, a, &binding("zzzz:wxyz")), None, "unknown ufrag");
        assert_eq!(key(&mut r, a, &binding("abcd:wxyz")), Some(1));
        assert_eq!(key(&mut r, a, b"\x16dtls"), Some(1), "known address now");
        for p in 0..20 {
            let b = SocketAddr::new(a.ip(), 6000 + p);
            key(&mut r, b, &binding("abcd:wxyz"));
        }
        assert_eq!(r.calls[&1].addrs.len(), MAX_ADDRS_PER_CALL);
        assert_eq!(r.by_addr.len(), MAX_ADDRS_PER_CALL);
        // Taken with its addresses and put back elsewhere, it is reached the same way.
        let (ufrag, addrs, ()) = r.take(1).unwrap();
        assert!(r.by_addr.is_empty() && r.by_ufrag.is_empty());
        let mut elsewhere = Routes::default();
        elsewhere.insert_with(1, ufrag, addrs, ());
        let last = SocketAddr::new(a.ip(), 6019);
        assert_eq!(key(&mut elsewhere, last, b"\x16dtls"), Some(1));
        assert_eq!(key(&mut elsewhere, a, &binding("abcd:wxyz")), Some(1));
        let mut r = elsewhere;
        let (ufrag, addrs, ()) = r.take(1).unwrap();
        assert_eq!((ufrag.as_str(), addrs.len()), ("abcd", MAX_ADDRS_PER_CALL));
        assert!(r.by_addr.is_empty() && r.by_ufrag.is_empty());
        assert_eq!(key(&mut r, a, b"\x16dtls"), None, "gone with the call");
    }
}
