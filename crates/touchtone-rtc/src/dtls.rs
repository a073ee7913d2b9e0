//! DTLS with one configuration per process. str0m's stock provider builds a new dimpl configuration
//! for every connection, and building one self-tests the crypto provider (key exchanges and signature
//! checks on every curve): a quarter of a call's setup CPU under a burst. Here the configuration is
//! built once per MTU and shared; each call still gets its own DTLS state, keys and randomness.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use dimpl::NamedGroup;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::crypto::CryptoError;
use str0m::crypto::dtls::{
    DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
};

/// Key exchange groups, most preferred first: what Chrome and Firefox offer first, and the cheapest.
/// P-384 is left out: a key share on it costs several times an X25519 one and no browser needs it.
const KX_GROUPS: &[NamedGroup] = &[NamedGroup::X25519, NamedGroup::Secp256r1];

/// The first retransmission of a lost handshake flight, doubled at each retry. dimpl's default is 1 s
/// (RFC 6347's suggestion for unknown paths); libwebrtc starts at twice the ICE round trip, at least
/// 50 ms. ICE has just run over this very path, so a tenth of a second is ample: through loss a call
/// gets seven tries in its first 10 s instead of four, and a spurious resend on a slow path costs a
/// few kilobytes once.
const FLIGHT_START_RTO: std::time::Duration = std::time::Duration::from_millis(100);

/// Retries of one flight: the eighth goes out 25.5 s after the first send, within dimpl's 40 s
/// handshake timeout.
const FLIGHT_RETRIES: usize = 8;

/// The crypto provider every peer uses: str0m's, with DTLS from [`SharedConfigDtls`].
pub(crate) fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut p = str0m::crypto::from_feature_flags();
            p.dtls_provider = &SHARED_CONFIG_DTLS;
            Arc::new(p)
        })
        .clone()
}

static SHARED_CONFIG_DTLS: SharedConfigDtls = SharedConfigDtls {
    configs: Mutex::new(None),
};

/// A DTLS provider that builds its dimpl configuration once per MTU.
#[derive(Debug)]
struct SharedConfigDtls {
    configs: Mutex<Option<HashMap<Option<usize>, Arc<dimpl::Config>>>>,
}

impl SharedConfigDtls {
    fn config(&self, mtu: Option<usize>) -> Result<Arc<dimpl::Config>, CryptoError> {
        let mut configs = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        let configs = configs.get_or_insert_with(HashMap::new);
        if let Some(c) = configs.get(&mtu) {
            return Ok(c.clone());
        }
        // ICE has checked return routability before DTLS starts, so server cookies add nothing.
        let mut provider = dimpl::crypto::aws_lc_rs::default_provider();
        provider.key_provider = &CACHED_KEYS;
        let mut builder = dimpl::Config::builder()
            .with_crypto_provider(provider)
            .use_server_cookie(false)
            .kx_groups(KX_GROUPS)
            .flight_start_rto(FLIGHT_START_RTO)
            .flight_retries(FLIGHT_RETRIES);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let config = Arc::new(
            builder
                .build()
                .map_err(|e| CryptoError::Other(format!("DTLS configuration: {e}")))?,
        );
        configs.insert(mtu, config.clone());
        Ok(config)
    }
}

impl DtlsProvider for SharedConfigDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let config = self.config(mtu)?;
        #[cfg(test)]
        tests::NEW_DTLS.with(|n| n.set(n.get() + 1));
        let cert = cert.clone();
        let dtls = match version {
            DtlsVersion::Dtls12 => dimpl::Dtls::new_12(config, cert, now),
            DtlsVersion::Dtls13 => dimpl::Dtls::new_13(config, cert, now),
            DtlsVersion::Auto => dimpl::Dtls::new_auto(config, cert, now),
            other => {
                return Err(CryptoError::Other(format!(
                    "unsupported DTLS version: {other}"
                )));
            }
        };
        Ok(Box::new(Connection(dtls)))
    }
}

/// Private keys parsed once: every call of a server signs with the same certificate's key, and
/// parsing it (a PKCS#8 check that derives the public key) cost each new DTLS instance about 40 µs.
static CACHED_KEYS: CachedKeys = CachedKeys {
    keys: Mutex::new(Vec::new()),
};

/// How many parsed keys are kept (certificates in use at once: a server's, and its rotation's).
const CACHED_KEYS_MAX: usize = 8;

/// A key provider that parses each private key once and shares the result.
#[derive(Debug)]
struct CachedKeys {
    keys: Mutex<Vec<(Vec<u8>, Arc<SharedKeyInner>)>>,
}

impl dimpl::crypto::KeyProvider for CachedKeys {
    fn load_private_key(
        &self,
        key_der: &[u8],
    ) -> Result<Box<dyn dimpl::crypto::SigningKey>, dimpl::CryptoError> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, key)) = keys.iter().find(|(der, _)| der == key_der) {
            return Ok(Box::new(SharedKey(key.clone())));
        }
        let key = dimpl::crypto::aws_lc_rs::default_provider()
            .key_provider
            .load_private_key(key_der)?;
        #[cfg(test)]
        tests::KEYS_PARSED.with(|n| n.set(n.get() + 1));
        let shared = Arc::new(SharedKeyInner {
            algorithm: key.algorithm(),
            hash: key.hash_algorithm(),
            hashes: key.supported_hash_algorithms().to_vec(),
            key: Mutex::new(key),
        });
        if keys.len() >= CACHED_KEYS_MAX {
            keys.remove(0);
        }
        keys.push((key_der.to_vec(), shared.clone()));
        Ok(Box::new(SharedKey(shared)))
    }
}

/// A parsed private key and what it signs with.
#[derive(Debug)]
struct SharedKeyInner {
    algorithm: dimpl::SignatureAlgorithm,
    hash: dimpl::HashAlgorithm,
    hashes: Vec<dimpl::HashAlgorithm>,
    key: Mutex<Box<dyn dimpl::crypto::SigningKey>>,
}

/// One DTLS instance's handle on a shared parsed key.
#[derive(Debug)]
struct SharedKey(Arc<SharedKeyInner>);

impl dimpl::crypto::SigningKey for SharedKey {
    fn sign(
        &mut self,
        data: &[u8],
        hash_alg: dimpl::HashAlgorithm,
        out: &mut dimpl::crypto::Buf,
    ) -> Result<(), dimpl::CryptoError> {
        let mut key = self.0.key.lock().unwrap_or_else(|e| e.into_inner());
        key.sign(data, hash_alg, out)
    }

    fn algorithm(&self) -> dimpl::SignatureAlgorithm {
        self.0.algorithm
    }

    fn hash_algorithm(&self) -> dimpl::HashAlgorithm {
        self.0.hash
    }

    fn supported_hash_algorithms(&self) -> &[dimpl::HashAlgorithm] {
        &self.0.hashes
    }
}

/// One connection's DTLS state.
struct Connection(dimpl::Dtls);

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl DtlsInstance for Connection {
    fn set_active(&mut self, active: bool) {
        self.0.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.0.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        self.0.poll_output(buf)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.0.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.0.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.0.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.0.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.0.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Peer, PeerConfig};
    use std::cell::Cell;

    thread_local! {
        /// DTLS states this provider made on this thread.
        pub(super) static NEW_DTLS: Cell<usize> = const { Cell::new(0) };
        /// Private keys parsed on this thread.
        pub(super) static KEYS_PARSED: Cell<usize> = const { Cell::new(0) };
    }

    #[test]
    fn a_certificate_key_is_parsed_once_for_all_its_calls() {
        let cert = crate::generate_certificate().unwrap();
        let config = PeerConfig {
            dtls_cert: Some(cert.clone()),
            ..PeerConfig::default()
        };
        let before = KEYS_PARSED.with(Cell::get);
        let now = Instant::now();
        let mut a = Peer::new(now, "127.0.0.1:9".parse().unwrap(), config.clone()).unwrap();
        let offer = a.create_offer().unwrap();
        let mut b = Peer::new(now, "127.0.0.1:10".parse().unwrap(), config.clone()).unwrap();
        b.accept_offer(now, &offer).unwrap();
        let mut c = Peer::new(now, "127.0.0.1:11".parse().unwrap(), config).unwrap();
        c.create_offer().unwrap();
        assert_eq!(KEYS_PARSED.with(Cell::get) - before, 1);
    }

    #[test]
    fn peers_get_their_dtls_from_the_shared_configuration() {
        let before = NEW_DTLS.with(Cell::get);
        let now = Instant::now();
        let mut a = Peer::new(now, "127.0.0.1:9".parse().unwrap(), PeerConfig::default()).unwrap();
        let offer = a.create_offer().unwrap();
        let mut b = Peer::new(now, "127.0.0.1:10".parse().unwrap(), PeerConfig::default()).unwrap();
        b.accept_offer(now, &offer).unwrap();
        assert_eq!(NEW_DTLS.with(Cell::get) - before, 2);
    }

    #[test]
    fn one_configuration_per_mtu() {
        let a = SHARED_CONFIG_DTLS.config(Some(1150)).unwrap();
        let b = SHARED_CONFIG_DTLS.config(Some(1150)).unwrap();
        let c = SHARED_CONFIG_DTLS.config(Some(1200)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.mtu(), 1200);
        let groups: Vec<_> = a.kx_groups().map(|g| g.name()).collect();
        assert_eq!(groups, KX_GROUPS);
    }
}
