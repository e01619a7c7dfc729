//! Client assertions: the `private_key_jwt` of SMART Backend Services, a JWT signed RS384
//! or ES384 with the client's private key, header `alg`, `kid`, `typ: JWT` and optional
//! `jku`; and the `client_secret_jwt` of RFC 7523, the same claims signed HS256 or
//! HS384 with the client secret (no `kid`). Claims: `iss` = `sub` = client id, `aud` =
//! the token URL, `exp` under five minutes ahead, a fresh `jti`, `iat`. A key is checked
//! by a trial signature when it is loaded, so a bad key is bad input before the run, and
//! no error ever carries key material or the secret (errors are mapped to fixed
//! wording). Uses `jsonwebtoken`; no I/O but reading the key.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use url::Url;

use super::Error;
use super::method::Hmac;
use super::secret::{Secret, SecretSource};

/// How far ahead `exp` is: under SMART's five-minute ceiling even with a client clock a
/// minute ahead of the server's.
pub const LIFETIME: Duration = Duration::from_secs(240);

/// A signing algorithm SMART Backend Services allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs384,
    Es384,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs384 => "RS384",
            Alg::Es384 => "ES384",
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            Alg::Rs384 => Algorithm::RS384,
            Alg::Es384 => Algorithm::ES384,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Alg {
    type Err = Error;

    /// `RS384` or `ES384` (any case); anything else is [`Error::UnsupportedAlg`].
    fn from_str(s: &str) -> Result<Alg, Error> {
        match s.to_ascii_uppercase().as_str() {
            "RS384" => Ok(Alg::Rs384),
            "ES384" => Ok(Alg::Es384),
            _ => Err(Error::UnsupportedAlg(s.to_owned())),
        }
    }
}

/// Signs client assertions with one key or one secret.
pub struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    /// `RS384`, `HS256`, …: for messages.
    name: &'static str,
    kid: Option<String>,
    jku: Option<Url>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.name)
            .field("kid", &self.kid)
            .field("jku", &self.jku.as_ref().map(Url::as_str))
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    iat: u64,
    jti: String,
}

impl Signer {
    /// Reads a PEM private key (PKCS#8, or PKCS#1 for RSA) and proves it signs `alg`.
    pub fn load(
        source: &SecretSource,
        alg: Alg,
        kid: String,
        jku: Option<Url>,
    ) -> Result<Signer, Error> {
        let pem = source.load("auth.private_key")?;
        let bad = |problem: &'static str| Error::Key {
            source_name: source.to_string(),
            alg,
            problem,
        };
        let parsed = match alg {
            Alg::Rs384 => EncodingKey::from_rsa_pem(pem.expose().as_bytes()),
            Alg::Es384 => EncodingKey::from_ec_pem(pem.expose().as_bytes()),
        };
        let key = parsed.map_err(|e| bad(pem_problem(e.kind(), pem.expose())))?;
        let signer = Signer {
            key,
            alg: alg.algorithm(),
            name: alg.as_str(),
            kid: Some(kid),
            jku,
        };
        // A public key or a key of the wrong curve parses; only signing tells.
        signer
            .sign("probe", "urn:fhirsurge:probe", SystemTime::now())
            .map_err(|_| bad("it cannot sign: not a private key for this algorithm"))?;
        Ok(signer)
    }

    /// A `client_secret_jwt` signer: the secret is the HMAC key.
    pub fn hmac(secret: &Secret, hmac: Hmac) -> Signer {
        let alg = match hmac {
            Hmac::Hs256 => Algorithm::HS256,
            Hmac::Hs384 => Algorithm::HS384,
        };
        Signer {
            key: EncodingKey::from_secret(secret.expose().as_bytes()),
            alg,
            name: hmac.as_str(),
            kid: None,
            jku: None,
        }
    }

    /// The algorithm's name (`RS384`, `HS256`, …).
    pub fn alg_name(&self) -> &'static str {
        self.name
    }

    /// A fresh assertion for `client_id` addressed to `token_url`, issued at `now`.
    pub fn sign(&self, client_id: &str, token_url: &str, now: SystemTime) -> Result<String, Error> {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        header.jku = self.jku.as_ref().map(Url::to_string);
        let claims = Claims {
            iss: client_id,
            sub: client_id,
            aud: token_url,
            exp: iat + LIFETIME.as_secs(),
            iat,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| Error::Sign(sign_problem(e.kind())))
    }
}

/// Why a PEM did not parse, in fixed words (the library's own text is not trusted to be
/// free of key material).
fn pem_problem(kind: &ErrorKind, pem: &str) -> &'static str {
    if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
        return "a SEC1 `EC PRIVATE KEY`; convert it to PKCS#8 \
                (`openssl pkcs8 -topk8 -nocrypt -in key.pem`)";
    }
    if pem.contains("ENCRYPTED PRIVATE KEY") {
        return "an encrypted private key; give an unencrypted PKCS#8 PEM";
    }
    match kind {
        ErrorKind::InvalidEcdsaKey => "not an EC private key (ES384 needs a P-384 key)",
        ErrorKind::InvalidRsaKey(_) => "not an RSA private key",
        ErrorKind::InvalidKeyFormat => "not a PEM private key",
        _ => "not a PEM private key for this algorithm",
    }
}

fn sign_problem(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidAlgorithm => "the key does not match the algorithm",
        ErrorKind::InvalidEcdsaKey => "the EC key was refused",
        ErrorKind::InvalidRsaKey(_) => "the RSA key was refused",
        _ => "signing failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rs384_and_es384_are_supported() {
        assert_eq!("RS384".parse::<Alg>().unwrap(), Alg::Rs384);
        assert_eq!("es384".parse::<Alg>().unwrap(), Alg::Es384);
        for other in ["RS256", "HS256", "none", ""] {
            let err = other.parse::<Alg>().unwrap_err();
            assert!(matches!(err, Error::UnsupportedAlg(_)), "{other}");
        }
    }

    #[test]
    fn a_sec1_ec_key_gets_a_conversion_hint() {
        let hint = pem_problem(
            &ErrorKind::InvalidKeyFormat,
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        );
        assert!(hint.contains("pkcs8"), "{hint}");
    }
}
