//! A sign-in for an unknown e-mail must be indistinguishable from a wrong
//! password, a reset or sign-in code request for an unknown e-mail from
//! one for an account, and a sign-up with a weak password for a free address from one
//! for a taken address: same code, same message, same time.

use std::time::{Duration, Instant};

use crate::helpers::{TestApp, TestDatabase, spawn_app_on};
use crate::mailbox::Inbox;

const TRIES: usize = 31;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn unknown_email_and_wrong_password_take_the_same_time() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.login_limits.login_max_failures = 10_000;
        s.login_limits.login_max_failures_per_ip = 10_000;
    })
    .await;

    // CI machines are noisy, so one round can be skewed by a burst from
    // elsewhere; a real leak (a skipped hash is 10x faster) fails every
    // round, so the test fails only if all rounds do.
    let mut rounds = Vec::new();
    for round in 0..3 {
        let (unknown, wrong) = measure(&app, round).await;
        let (low, high) = (unknown.min(wrong), unknown.max(wrong));
        let difference = (high - low).as_secs_f64() / high.as_secs_f64();
        eprintln!("round {round}: unknown e-mail {unknown:?}, wrong password {wrong:?}");
        if difference <= 0.20 {
            return;
        }
        rounds.push(format!(
            "{:.0}% (unknown e-mail {unknown:?}, wrong password {wrong:?})",
            difference * 100.0
        ));
    }
    panic!("medians differ by more than 20% in every round: {rounds:?}");
}

/// Median times of `TRIES` sign-ins of each kind, interleaved, and in
/// alternating order within each pair, so drift and noise fall on both alike. Each try is an address's first failure, as in
/// an enumeration attack: the first failure also creates the address's
/// throttle counter, for known and unknown addresses alike.
async fn measure(app: &TestApp, round: usize) -> (Duration, Duration) {
    let mut known = Vec::new();
    for _ in 0..TRIES {
        known.push(app.signed_in_user().await.0);
    }
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for (i, email) in known.iter().enumerate() {
        let nobody = format!("nobody-{round}-{i}@example.com");
        if i % 2 == 0 {
            unknown.push(time_failed_login(app, &nobody).await);
            wrong.push(time_failed_login(app, email).await);
        } else {
            wrong.push(time_failed_login(app, email).await);
            unknown.push(time_failed_login(app, &nobody).await);
        }
    }
    (median(unknown), median(wrong))
}

async fn time_failed_login(app: &TestApp, email: &str) -> Duration {
    let started = Instant::now();
    let reply = app.login(email, "a wrong password").await;
    let took = started.elapsed();
    assert_eq!(reply.code(), "INVALID_CREDENTIALS");
    took
}

const REQUEST_RESET: &str =
    "mutation($email: String!) { requestPasswordReset(input: {email: $email}) }";
const REQUEST_CODE: &str =
    "mutation($email: String!) { requestEmailSignInCode(email: $email) { challenge } }";

#[tokio::test]
async fn reset_requests_take_the_same_time_for_unknown_and_known_addresses() {
    mail_requests_take_the_same_time(REQUEST_RESET, "requestPasswordReset").await;
}

#[tokio::test]
async fn sign_in_code_requests_take_the_same_time_for_unknown_and_known_addresses() {
    mail_requests_take_the_same_time(REQUEST_CODE, "requestEmailSignInCode").await;
}

/// A request that mails an account (`query`, answering `field`) takes as
/// long for an address with no account.
async fn mail_requests_take_the_same_time(query: &str, field: &str) {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.login_limits.mail_max_per_ip = 10_000;
        s.other_ways_in.email_sign_in = true;
    })
    .await;
    let mut rounds = Vec::new();
    for round in 0..3 {
        let mut known = Vec::new();
        for _ in 0..TRIES {
            known.push(app.signed_in_user().await.0);
        }
        let (mut unknown_times, mut known_times) = (Vec::new(), Vec::new());
        for (i, email) in known.iter().enumerate() {
            let nobody = format!("nobody-{field}-{round}-{i}@example.com");
            if i % 2 == 0 {
                unknown_times.push(time_request(&app, query, field, &nobody).await);
                known_times.push(time_request(&app, query, field, email).await);
            } else {
                known_times.push(time_request(&app, query, field, email).await);
                unknown_times.push(time_request(&app, query, field, &nobody).await);
            }
        }
        let (unknown, known) = (median(unknown_times), median(known_times));
        let (low, high) = (unknown.min(known), unknown.max(known));
        let difference = (high - low).as_secs_f64() / high.as_secs_f64();
        eprintln!("{field} round {round}: unknown e-mail {unknown:?}, account {known:?}");
        if difference <= 0.20 {
            // And the accounts did get their messages.
            app.mail.wait_for(2 * TRIES * (round + 1)).await;
            return;
        }
        rounds.push(format!(
            "{:.0}% (unknown e-mail {unknown:?}, account {known:?})",
            difference * 100.0
        ));
    }
    panic!("{field}: medians differ by more than 20% in every round: {rounds:?}");
}

async fn time_request(app: &TestApp, query: &str, field: &str, email: &str) -> Duration {
    let started = Instant::now();
    let reply = app
        .graphql(query, serde_json::json!({ "email": email }), None)
        .await;
    let took = started.elapsed();
    assert!(!reply.data(field).is_null(), "{}", reply.body);
    took
}

/// A weak password is refused before the address is looked up, so a sign-up
/// with one says nothing, in answer or in time, about whether the address
/// has an account.
#[tokio::test]
async fn weak_sign_ups_take_the_same_time_for_taken_and_free_addresses() {
    let app = spawn_app_on(TestDatabase::create().await, |_| {}).await;
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let (mut free_times, mut taken_times) = (Vec::new(), Vec::new());
        for i in 0..TRIES {
            let taken = app.signed_in_user().await.0;
            // The same shape as a taken one, so zxcvbn sees alike inputs.
            let free = format!("user-{}@example.com", uuid::Uuid::new_v4());
            if i % 2 == 0 {
                free_times.push(time_weak_sign_up(&app, &free).await);
                taken_times.push(time_weak_sign_up(&app, &taken).await);
            } else {
                taken_times.push(time_weak_sign_up(&app, &taken).await);
                free_times.push(time_weak_sign_up(&app, &free).await);
            }
        }
        let (free, taken) = (median(free_times), median(taken_times));
        let (low, high) = (free.min(taken), free.max(taken));
        let difference = (high - low).as_secs_f64() / high.as_secs_f64();
        eprintln!("weak sign-up: free address {free:?}, taken {taken:?}");
        if difference <= 0.20 {
            return;
        }
        rounds.push(format!(
            "{:.0}% (free {free:?}, taken {taken:?})",
            difference * 100.0
        ));
    }
    panic!("medians differ by more than 20% in every round: {rounds:?}");
}

async fn time_weak_sign_up(app: &TestApp, email: &str) -> Duration {
    let started = Instant::now();
    let reply = app.register(email, "password1").await;
    let took = started.elapsed();
    assert_eq!(reply.code(), "PASSWORD_TOO_WEAK", "{}", reply.body);
    took
}
