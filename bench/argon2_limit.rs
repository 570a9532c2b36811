//! The physical limit for logins: argon2id verifications per second with
//! Gatehouse's parameters, one thread per core, as the server runs them.
//! `cargo bench --bench argon2_limit` prints one JSON line.

use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

fn main() {
    let seconds: u64 = std::env::var("ARGON2_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP parameters");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let hash = argon
        .hash_password(b"correct horse battery")
        .expect("hash")
        .to_string();

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cores)
            .map(|_| {
                let (argon, hash) = (argon.clone(), hash.clone());
                scope.spawn(move || {
                    let parsed = PasswordHash::new(&hash).expect("parse");
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        argon
                            .verify_password(b"correct horse battery", &parsed)
                            .expect("verifies");
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"cores\":{cores},\"verifications\":{total},\"seconds\":{elapsed:.3},\"per_second\":{:.1}}}",
        total as f64 / elapsed
    );
}
