//! DKIM: digests and confirmations signed with RSA and Ed25519 keys verify with an
//! independent verifier (dkimpy, which `.ci/run` installs) after passing through a real
//! SMTP server on 127.0.0.1; a changed body or header fails.

use std::path::Path;
use std::sync::Arc;

use herald::clock::{Clock, FixedClock};
use herald::config::{DkimAlgorithm, Secrets};
use herald::deliver::dkim::{DkimSigner, generate_key};
use herald::domain::{SubscriberEmail, SubscriberStatus};
use herald::pipeline::{DigestWhen, EnrichScope, Herald};
use tokio::sync::watch;

use crate::smtp_sink::SmtpSink;
use crate::support::{FeedServer, TestEnv, clock, fixture, source};

const SECRET: &str = "kQ3v9XbT2mLz7RwP5nYc8HdF1sJg4UaE";

/// dkimpy's verdict on `message`, with `record` as the only DNS answer (nothing is looked
/// up). Panics, saying how to install it, when dkimpy is missing.
fn dkimpy_verifies(dir: &Path, message: &[u8], expect_name: &str, record: &str) -> bool {
    const SCRIPT: &str = r#"
import sys
try:
    import dkim, nacl  # noqa: F401
except ImportError as e:
    print("dkimpy missing: " + str(e), file=sys.stderr)
    sys.exit(3)
message = open(sys.argv[1], "rb").read()
want, record = sys.argv[2], sys.argv[3].encode()
def dns(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    if name.rstrip(".") != want:
        print("asked for " + name, file=sys.stderr)
        return None
    return record
sys.exit(0 if dkim.verify(message, dnsfunc=dns) else 1)
"#;
    let path = dir.join("verify.eml");
    std::fs::write(&path, message).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&path)
        .arg(expect_name)
        .arg(record)
        .output()
        .expect("python3 runs");
    assert_ne!(
        out.status.code(),
        Some(3),
        "install the independent verifier: pip install dkimpy pynacl ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success()
}

fn config(feed_url: &str, smtp_url: &str, key: &Path, algorithm: &str) -> String {
    format!(
        "{}[smtp]\nurl = \"{smtp_url}\"\ntls = \"none\"\nfrom = \"Field Notes <news@example.org>\"\n\
         bounce_address = \"bounces@example.org\"\nrate = 10000\n\n\
         [smtp.dkim]\ndomain = \"example.org\"\nselector = \"s2026\"\nalgorithm = \"{algorithm}\"\n\
         private_key = \"{}\"\n\n\
         [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\n",
        source("blog", feed_url),
        key.display()
    )
}

async fn herald_for(env: &TestEnv, clock: &FixedClock) -> Herald {
    let secrets = Secrets {
        signing_secret: Some(SECRET.into()),
        ..Secrets::default()
    };
    Herald::open_with(env.config(), Arc::new(clock.clone()), secrets)
        .await
        .unwrap()
}

/// A copy of `message` with one letter in the middle of its body changed (in any
/// transfer encoding, a change of content).
fn with_body_changed(message: &[u8]) -> Vec<u8> {
    let body_at = message.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let middle = body_at + (message.len() - body_at) / 2;
    let at = middle
        + message[middle..]
            .iter()
            .position(u8::is_ascii_alphabetic)
            .expect("the body holds a letter");
    let mut changed = message.to_vec();
    changed[at] = if changed[at] == b'x' { b'y' } else { b'x' };
    changed
}

async fn signed_mail_verifies(algorithm: DkimAlgorithm, name: &str) {
    let keys = tempfile::tempdir().unwrap();
    let key_path = keys.path().join("dkim.pem");
    std::fs::write(&key_path, generate_key(algorithm).unwrap()).unwrap();
    let feed = FeedServer::start(fixture("rss20-media.xml")).await;
    let sink = SmtpSink::start().await;
    let env = TestEnv::new(&config(
        &feed.url("/feed.xml"),
        &sink.url(),
        &key_path,
        name,
    ));
    let clock = clock();
    let herald = herald_for(&env, &clock).await;
    let signer = DkimSigner::load(env.config().smtp.dkim.as_ref().unwrap(), None).unwrap();
    let (record_name, record) = signer.dns_record().unwrap();
    assert_eq!(record_name, "s2026._domainkey.example.org");

    herald.poll_sources(None).await.unwrap();
    herald.enrich(EnrichScope::Stale).await.unwrap();
    for email in ["ana@example.org", "bob@example.org"] {
        herald
            .store
            .add_subscriber(
                &SubscriberEmail::parse(email).unwrap(),
                Some("Ana Smith"),
                &["weekly".into()],
                SubscriberStatus::Confirmed,
                clock.now(),
            )
            .await
            .unwrap();
    }
    herald
        .send_digest("weekly", DigestWhen::Now, watch::channel(false).1)
        .await
        .unwrap();
    // A confirmation too: transactional mail is signed the same way.
    herald
        .sign_up(
            &SubscriberEmail::parse("carol@example.org").unwrap(),
            None,
            &["weekly".into()],
        )
        .await
        .unwrap();
    let received = sink.received();
    assert_eq!(received.len(), 3, "two digests and a confirmation");
    for m in &received {
        let text = String::from_utf8_lossy(&m.data);
        assert!(
            text.starts_with("DKIM-Signature: v=1; a="),
            "{}",
            &text[..200.min(text.len())]
        );
        assert!(text.contains(&format!("a={name};")), "{name}");
        assert!(
            dkimpy_verifies(env.dir.path(), &m.data, &record_name, &record),
            "{name}: a message as received does not verify"
        );
        // Tampering: a word of the body, then the subject.
        let tampered = with_body_changed(&m.data);
        assert!(
            !dkimpy_verifies(env.dir.path(), &tampered, &record_name, &record),
            "{name}: a changed body still verifies"
        );
        let subject_at = text.find("\r\nSubject: ").unwrap() + 11;
        let mut changed = m.data.clone();
        changed[subject_at] ^= 0x20;
        assert!(
            !dkimpy_verifies(env.dir.path(), &changed, &record_name, &record),
            "{name}: a changed subject still verifies"
        );
        // A header added on the way, below the signature: a second Subject (which
        // many clients show instead of the first) and a Reply-To the message lacked.
        for added in [
            "Subject: You have won\r\n",
            "Reply-To: thief@example.net\r\n",
        ] {
            let mut changed = m.data.clone();
            changed.splice(subject_at - 9..subject_at - 9, added.bytes());
            assert!(
                !dkimpy_verifies(env.dir.path(), &changed, &record_name, &record),
                "{name}: an added {added:?} still verifies"
            );
        }
        // Another key for the same selector does not verify it.
        let other = tempfile::tempdir().unwrap();
        let other_path = other.path().join("other.pem");
        std::fs::write(&other_path, generate_key(algorithm).unwrap()).unwrap();
        let mut other_config = env.config().smtp.dkim.unwrap();
        other_config.private_key = Some(other_path);
        let (_, other_record) = DkimSigner::load(&other_config, None)
            .unwrap()
            .dns_record()
            .unwrap();
        assert!(!dkimpy_verifies(
            env.dir.path(),
            &m.data,
            &record_name,
            &other_record
        ));
    }
}

#[tokio::test]
async fn rsa_signed_digests_and_confirmations_verify_independently() {
    signed_mail_verifies(DkimAlgorithm::RsaSha256, "rsa-sha256").await;
}

#[tokio::test]
async fn ed25519_signed_digests_and_confirmations_verify_independently() {
    signed_mail_verifies(DkimAlgorithm::Ed25519Sha256, "ed25519-sha256").await;
}

#[tokio::test]
async fn check_config_names_a_bad_key_and_a_misaligned_domain() {
    let keys = tempfile::tempdir().unwrap();
    let ed = keys.path().join("ed.pem");
    std::fs::write(&ed, generate_key(DkimAlgorithm::Ed25519Sha256).unwrap()).unwrap();
    let garbage = keys.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let base = "[smtp]\nfrom = \"news@example.org\"\n[smtp.dkim]\nselector = \"s1\"\n";
    // An Ed25519 key where RSA is configured.
    let env = TestEnv::new(&format!(
        "{base}domain = \"example.org\"\nprivate_key = \"{}\"\n",
        ed.display()
    ));
    let (code, _, err) = env.run(&["check-config"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("Ed25519") && err.contains("ed25519-sha256"),
        "{err}"
    );
    // A file that is not a key.
    let env = TestEnv::new(&format!(
        "{base}domain = \"example.org\"\nalgorithm = \"ed25519-sha256\"\nprivate_key = \"{}\"\n",
        garbage.display()
    ));
    let (code, _, err) = env.run(&["check-config"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("garbage.pem"), "{err}");
    // No key at all.
    let env = TestEnv::new(&format!("{base}domain = \"example.org\"\n"));
    let (code, _, err) = env.run(&["check-config"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("HERALD_DKIM_KEY"), "{err}");
    // A good key whose domain does not align with From: a warning, not a failure.
    let env = TestEnv::new(&format!(
        "{base}domain = \"mail.other.example\"\nalgorithm = \"ed25519-sha256\"\nprivate_key = \"{}\"\n",
        ed.display()
    ));
    let (code, _, err) = env.run(&["check-config"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("does not appear to align"), "{err}");
    // The key from the environment.
    let env = TestEnv::new(&format!(
        "{base}domain = \"example.org\"\nalgorithm = \"ed25519-sha256\"\n"
    ));
    let pem = std::fs::read_to_string(&ed).unwrap();
    let (code, _, err) = env
        .run_with_env(&["check-config"], &[("HERALD_DKIM_KEY", pem.as_str())])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("align"), "{err}");
    // The same PEM with its newlines written as "\n", as env files often carry it.
    let escaped = pem.trim_end().replace('\n', "\\n");
    let (code, _, err) = env
        .run_with_env(&["check-config"], &[("HERALD_DKIM_KEY", escaped.as_str())])
        .await;
    assert_eq!(code, 0, "{err}");
    // A signing domain one label below From's aligns (relaxed alignment).
    let env = TestEnv::new(&format!(
        "{base}domain = \"mail.example.org\"\nalgorithm = \"ed25519-sha256\"\nprivate_key = \"{}\"\n",
        ed.display()
    ));
    let (code, _, err) = env.run(&["check-config"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("align"), "{err}");
    // Signed headers: From is required and names are tokens.
    for (headers, says) in [
        ("[\"Subject\", \"To\"]", "must include \"From\""),
        (
            "[\"From\", \"X Mailer\"]",
            "\"X Mailer\" is not a header name",
        ),
        (
            "[\"From\", \"Subject:\"]",
            "\"Subject:\" is not a header name",
        ),
    ] {
        let env = TestEnv::new(&format!(
            "{base}domain = \"example.org\"\nalgorithm = \"ed25519-sha256\"\nprivate_key = \"{}\"\nheaders = {headers}\n",
            ed.display()
        ));
        let (code, _, err) = env.run(&["check-config"]).await;
        assert_eq!(code, 1, "{headers}: {err}");
        assert!(
            err.contains("smtp.dkim.headers") && err.contains(says),
            "{headers}: {err}"
        );
    }
}

#[tokio::test]
async fn keygen_writes_a_private_key_once_and_prints_the_record() {
    let env = TestEnv::new("");
    let (code, out, err) = env
        .run(&[
            "dkim",
            "keygen",
            "--selector",
            "s1",
            "--domain",
            "example.org",
            "--algorithm",
            "ed25519-sha256",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("s1._domainkey.example.org. IN TXT \"v=DKIM1; k=ed25519; p="),
        "{out}"
    );
    let path = env.dir.path().join("dkim-s1.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
    }
    let before = std::fs::read(&path).unwrap();
    let (code, _, err) = env
        .run(&[
            "dkim",
            "keygen",
            "--selector",
            "s1",
            "--domain",
            "example.org",
        ])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("never overwritten"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let (code, _, err) = env
        .run(&[
            "dkim",
            "keygen",
            "--selector",
            "s 1",
            "--domain",
            "example.org",
        ])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("--selector"), "{err}");
    // An RSA record is longer than one DNS string may be: split into quoted strings.
    let (code, out, err) = env
        .run(&[
            "dkim",
            "keygen",
            "--selector",
            "r1",
            "--domain",
            "example.org",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let line = out.lines().find(|l| l.contains(" IN TXT ")).unwrap();
    let strings: Vec<&str> = line
        .split_once(" IN TXT ")
        .unwrap()
        .1
        .split("\" \"")
        .map(|s| s.trim_matches('"'))
        .collect();
    assert!(strings.len() >= 2, "{line}");
    assert!(strings.iter().all(|s| s.len() <= 255), "{line}");
    assert!(
        strings.concat().starts_with("v=DKIM1; k=rsa; p=MII"),
        "{line}"
    );
}
