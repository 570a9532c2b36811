//! What zxcvbn costs per password, by length and shape, on one core: the
//! measurement behind `password_quality::SCORED_CHARS`.
//! `cargo bench --bench password_quality` prints Markdown tables of median
//! microseconds (bench/README.md records a run). Each cell is the median of
//! `QUALITY_BENCH_RUNS` runs (default 41), or of as many as fit in 2 s
//! (at least 5).

use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, Version};

use gatehouse::domain::password::Password;
use gatehouse::domain::password_quality::{self, MinScore, SCORED_CHARS};

const LENGTHS: [usize; 10] = [8, 16, 24, 32, 48, 64, 80, 100, 256, 1024];

/// Makes a password of a shape at a length.
type Maker = Box<dyn Fn(usize) -> String>;

/// Passwords of every shape zxcvbn has a matcher for, and random ones.
fn shapes() -> Vec<(&'static str, Maker)> {
    let cycle = |text: &'static str| move |n: usize| text.chars().cycle().take(n).collect();
    vec![
        ("random", Box::new(random)),
        ("aaaa…", Box::new(|n| "a".repeat(n))),
        ("words", Box::new(cycle("correct horse battery staple "))),
        ("password…", Box::new(cycle("password"))),
        ("keyboard", Box::new(cycle("qwertyuiopasdfghjklzxcvbnm"))),
        ("dates", Box::new(cycle("19700101"))),
        ("abc…", Box::new(cycle("abcdefghijklmnopqrstuvwxyz"))),
        ("l33t words", Box::new(cycle("p@55w0rd$1!"))),
        // Every character zxcvbn's l33t table knows: the most substitution
        // sets to try, each a dictionary pass over the whole text.
        ("l33t table", Box::new(cycle("4@8({[<3619|!170$5+%2"))),
    ]
}

/// Printable ASCII from a fixed xorshift seed, so every run scores the same.
fn random(n: usize) -> String {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b' ' + (state % 95) as u8)
        })
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn micros(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn main() {
    let runs: usize = std::env::var("QUALITY_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(41);
    let email = "ada.lovelace@example.com";
    let words = [
        email,
        "ada.lovelace",
        "adalovelace",
        "example.com",
        "lovelace",
        "example",
    ];

    // zxcvbn builds its dictionaries on first use; the server does it at start.
    let started = Instant::now();
    zxcvbn::zxcvbn("warm up", &[]);
    println!(
        "first call (dictionaries built): {} µs",
        micros(started.elapsed())
    );
    // What every new password costs anyway, for scale.
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("OWASP parameters"),
    );
    let hashes = (0..11)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(argon.hash_password(b"correct horse battery").expect("hash"));
            started.elapsed()
        })
        .collect();
    println!(
        "one argon2id hash (m=19456, t=2, p=1): {} µs\n",
        micros(median(hashes))
    );

    let shapes = shapes();
    let header: Vec<&str> = shapes.iter().map(|(name, _)| *name).collect();
    let min = MinScore::new(3).expect("score");
    type Scorer<'a> = Box<dyn Fn(&str) + 'a>;
    let scorers: [(&str, Scorer); 2] = [
        (
            "zxcvbn::zxcvbn, the whole password (the crate itself stops at 100 characters)",
            Box::new(|p: &str| {
                std::hint::black_box(zxcvbn::zxcvbn(p, &words));
            }),
        ),
        (
            "password_quality::judge, as the server runs it",
            Box::new(|p: &str| {
                let password = Password::parse_attempt(p.to_owned()).expect("password");
                let _ = std::hint::black_box(password_quality::judge(&password, email, min));
            }),
        ),
    ];
    for (title, score) in &scorers {
        println!("{title}; SCORED_CHARS = {SCORED_CHARS}; median µs\n");
        println!("| length | {} | slowest |", header.join(" | "));
        println!("|---:|{}---:|", "---:|".repeat(header.len()));
        for length in LENGTHS {
            let medians: Vec<Duration> = shapes
                .iter()
                .map(|(_, make)| {
                    let password = make(length);
                    let budget = Instant::now() + Duration::from_secs(2);
                    let mut samples = Vec::new();
                    while samples.len() < runs && (samples.len() < 5 || Instant::now() < budget) {
                        let started = Instant::now();
                        score(&password);
                        samples.push(started.elapsed());
                    }
                    median(samples)
                })
                .collect();
            let slowest = medians.iter().max().copied().unwrap_or_default();
            let cells: Vec<String> = medians.into_iter().map(micros).collect();
            println!("| {length} | {} | {} |", cells.join(" | "), micros(slowest));
        }
        println!();
    }
}
