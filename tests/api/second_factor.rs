//! The second factor through the real router, on SQLite and PostgreSQL:
//! TOTP enrolment and sign-in with codes computed by totp-rs directly from
//! the secret the API hands out (as an authenticator app would), recovery
//! codes, the assurance level the guard enforces, remembered browsers, and
//! the attacks on each.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use entity::totp_factor;
use futures_util::future::join_all;
use gatehouse::clock::Clock;
use gatehouse::config::Settings;
use gatehouse::domain::second_factor::Requirement;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::helpers::{PASSWORD, Reply, TestApp, TestDatabase, spawn_app_with_clock};
use crate::mailbox::Inbox;

const BEGIN: &str = "mutation { beginTotpEnrolment { secret uri qrCodeSvg expiresAt } }";
const CONFIRM: &str = "mutation($c: String!) { confirmTotpEnrolment(input: {code: $c}) {
    recoveryCodes session { methods assuranceLevel } } }";
const LOGIN: &str = "mutation($e: String!, $p: String!, $d: String) {
    login(input: {email: $e, password: $p, knownDevice: $d}) { token knownDevice
      session { methods assuranceLevel } } }";
const COMPLETE: &str = "mutation($ch: String!, $t: String, $r: String, $rem: Boolean, $d: String) {
    completeSignIn(input: {challenge: $ch, totpCode: $t, recoveryCode: $r,
                           rememberDevice: $rem, knownDevice: $d}) {
      token knownDevice session { methods assuranceLevel } } }";
const STEP_UP: &str = "mutation($p: String!, $t: String, $r: String) {
    reauthenticate(input: {password: $p, totpCode: $t, recoveryCode: $r}) {
      session { methods assuranceLevel } } }";
const STATUS: &str = "{ me { secondFactor { enabled recoveryCodesLeft
    rememberedDevices { id rememberedUntil } } session { methods assuranceLevel } } }";

/// A step start plus one second: codes are deterministic from here.
fn start() -> DateTime<Utc> {
    Utc.timestamp_opt(1_900_000_021 - 1_900_000_021 % 30 + 1, 0)
        .unwrap()
}

/// The code an authenticator app shows at `at` for a base32 secret.
fn code(secret: &str, at: DateTime<Utc>) -> String {
    let bytes = Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
    TOTP::new_unchecked(Algorithm::SHA1, 6, 0, 30, bytes, None, String::new())
        .generate(at.timestamp() as u64)
}

struct Enrolled {
    email: String,
    token: String,
    secret: String,
    recovery: Vec<String>,
}

async fn app_at(clock: &Clock, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_clock(TestDatabase::create().await, clock.clone(), configure).await
}

/// A new account with TOTP on, enrolled at the clock's instant.
async fn enrolled(app: &TestApp, clock: &Clock) -> Enrolled {
    let (email, token, _) = app.signed_in_user().await;
    let begun = app.graphql(BEGIN, json!({}), Some(&token)).await;
    let begun = begun.data("beginTotpEnrolment").clone();
    let secret = begun["secret"].as_str().unwrap().to_owned();
    assert!(begun["qrCodeSvg"].as_str().unwrap().starts_with("<?xml"));
    let uri = begun["uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Gatehouse:"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let confirmed = app
        .graphql(
            CONFIRM,
            json!({ "c": code(&secret, clock.now()) }),
            Some(&token),
        )
        .await;
    let confirmed = confirmed.data("confirmTotpEnrolment");
    assert_eq!(confirmed["session"]["assuranceLevel"], "AAL2");
    assert_eq!(confirmed["session"]["methods"], json!(["PASSWORD", "TOTP"]));
    let recovery: Vec<String> = confirmed["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let told = app.mail.nth_to(&email, 2).await;
    assert!(told.subject.contains("turned on"), "{}", told.subject);
    Enrolled {
        email,
        token,
        secret,
        recovery,
    }
}

async fn login(app: &TestApp, email: &str, device: Option<&str>) -> Reply {
    app.graphql(
        LOGIN,
        json!({ "e": email, "p": PASSWORD, "d": device }),
        None,
    )
    .await
}

/// Signs in with the password and returns the challenge it must answer.
async fn challenge(app: &TestApp, email: &str) -> String {
    let reply = login(app, email, None).await;
    assert_eq!(reply.code(), "SECOND_FACTOR_REQUIRED", "{:?}", reply.body);
    let ext = &reply.body["errors"][0]["extensions"];
    assert_eq!(ext["methods"], json!(["TOTP", "RECOVERY_CODE"]));
    assert!(reply.body["data"].is_null(), "{:?}", reply.body);
    ext["challenge"].as_str().unwrap().to_owned()
}

async fn complete(
    app: &TestApp,
    challenge: &str,
    totp: Option<&str>,
    recovery: Option<&str>,
) -> Reply {
    let vars = json!({ "ch": challenge, "t": totp, "r": recovery });
    app.graphql(COMPLETE, vars, None).await
}

#[tokio::test]
async fn a_password_alone_gets_a_challenge_and_a_code_opens_the_session() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let user = enrolled(&app, &clock).await;
    assert_eq!(user.recovery.len(), 10);
    for code in &user.recovery {
        let ok = code.len() == 14
            && code
                .split('-')
                .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(ok, "{code}");
    }

    let pending = challenge(&app, &user.email).await;
    // The code the enrolment used is spent (RFC 6238 §5.2).
    let replay = complete(&app, &pending, Some(&code(&user.secret, clock.now())), None).await;
    assert_eq!(replay.code(), "INVALID_SECOND_FACTOR");

    clock.set(clock.now() + TimeDelta::seconds(30));
    let next = code(&user.secret, clock.now());
    let signed_in = complete(&app, &pending, Some(&next), None).await;
    let signed_in = signed_in.data("completeSignIn");
    assert_eq!(signed_in["session"]["assuranceLevel"], "AAL2");
    assert_eq!(signed_in["session"]["methods"], json!(["PASSWORD", "TOTP"]));
    let token = signed_in["token"].as_str().unwrap();
    let me = app.graphql(STATUS, json!({}), Some(token)).await;
    assert_eq!(me.data("me")["secondFactor"]["enabled"], true);
    assert_eq!(me.data("me")["secondFactor"]["recoveryCodesLeft"], 10);
    // The challenge was single-use.
    clock.set(clock.now() + TimeDelta::seconds(30));
    let again = complete(&app, &pending, Some(&code(&user.secret, clock.now())), None).await;
    assert_eq!(again.code(), "INVALID_CHALLENGE");

    // The history says how each session proved itself.
    let events = app
        .graphql("{ me { securityEvents(first: 3) { edges { node { kind methods assuranceLevel } } } } }", json!({}), Some(token))
        .await;
    let newest = &events.data("me")["securityEvents"]["edges"][0]["node"];
    assert_eq!(newest["kind"], "SIGNED_IN");
    assert_eq!(newest["methods"], json!(["PASSWORD", "TOTP"]));
    assert_eq!(newest["assuranceLevel"], "AAL2");
}

#[tokio::test]
async fn codes_one_step_either_side_pass_and_two_steps_do_not() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let user = enrolled(&app, &clock).await;
    let base = clock.now() + TimeDelta::minutes(10);
    clock.set(base);
    for (offset, accepted) in [(-60, false), (60, false), (-30, true), (30, true)] {
        let pending = challenge(&app, &user.email).await;
        let at = base + TimeDelta::seconds(offset);
        let reply = complete(&app, &pending, Some(&code(&user.secret, at)), None).await;
        if accepted {
            reply.data("completeSignIn");
        } else {
            assert_eq!(reply.code(), "INVALID_SECOND_FACTOR", "offset {offset}");
        }
    }
}

#[tokio::test]
async fn a_code_used_on_one_node_is_refused_on_the_other() {
    let clock = Clock::manual(start());
    let database = TestDatabase::create().await;
    let a = spawn_app_with_clock(database.clone(), clock.clone(), |_| {}).await;
    let b = spawn_app_with_clock(database, clock.clone(), |_| {}).await;
    let user = enrolled(&a, &clock).await;
    clock.set(clock.now() + TimeDelta::seconds(30));
    let now = code(&user.secret, clock.now());
    // A challenge begun on one node is answered on the other.
    let first = challenge(&a, &user.email).await;
    complete(&b, &first, Some(&now), None)
        .await
        .data("completeSignIn");
    let second = challenge(&b, &user.email).await;
    let replay = complete(&a, &second, Some(&now), None).await;
    assert_eq!(replay.code(), "INVALID_SECOND_FACTOR");
}

#[tokio::test]
async fn parallel_guesses_check_exactly_the_limit() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let user = enrolled(&app, &clock).await;
    let mut challenges = Vec::new();
    for _ in 0..10 {
        challenges.push(challenge(&app, &user.email).await);
    }
    let wrong = if code(&user.secret, clock.now()) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let guesses = challenges
        .iter()
        .flat_map(|c| std::iter::repeat_n(c, 3))
        .map(|c| complete(&app, c, Some(wrong), None));
    let replies = join_all(guesses).await;
    let count = |code: &str| replies.iter().filter(|r| r.code() == code).count();
    assert_eq!(count("INVALID_SECOND_FACTOR"), 5, "the account's limit");
    assert_eq!(count("RATE_LIMITED"), 25);
}

#[tokio::test]
async fn a_challenge_dies_after_three_wrong_codes_and_after_five_minutes() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |s| s.login_limits.code_max_failures = 100).await;
    let user = enrolled(&app, &clock).await;
    clock.set(clock.now() + TimeDelta::seconds(30));
    let pending = challenge(&app, &user.email).await;
    for _ in 0..3 {
        let wrong = complete(&app, &pending, None, Some("aaaa-aaaa-aaaa")).await;
        assert_eq!(wrong.code(), "INVALID_SECOND_FACTOR");
    }
    let right = complete(&app, &pending, Some(&code(&user.secret, clock.now())), None).await;
    assert_eq!(right.code(), "INVALID_CHALLENGE");

    let late = challenge(&app, &user.email).await;
    clock.set(clock.now() + TimeDelta::minutes(5));
    let right = complete(&app, &late, Some(&code(&user.secret, clock.now())), None).await;
    assert_eq!(right.code(), "INVALID_CHALLENGE");
    // Two codes in one request are refused before either is checked.
    let both = app
        .graphql(
            "mutation($c: String!) { a: completeSignIn(input: {challenge: $c, totpCode: \"1\"}) { token }
               b: completeSignIn(input: {challenge: $c, totpCode: \"2\"}) { token } }",
            json!({ "c": late }),
            None,
        )
        .await;
    assert_eq!(both.code(), "TOO_MANY_PASSWORD_CHECKS");
}

#[tokio::test]
async fn one_recovery_code_used_twice_at_once_opens_one_session() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let user = enrolled(&app, &clock).await;
    let (a, b) = (
        challenge(&app, &user.email).await,
        challenge(&app, &user.email).await,
    );
    let code = user.recovery[3].to_uppercase().replace('-', " ");
    let (x, y) = tokio::join!(
        complete(&app, &a, None, Some(&code)),
        complete(&app, &b, None, Some(&code))
    );
    let opened = [&x, &y]
        .iter()
        .filter(|r| r.body["data"].is_object() && !r.body["data"].is_null())
        .count();
    assert_eq!(opened, 1, "{:?} {:?}", x.body, y.body);
    let failed = if x.body["errors"].is_array() { &x } else { &y };
    assert_eq!(failed.code(), "INVALID_SECOND_FACTOR");
    let winner = if x.body["errors"].is_array() { &y } else { &x };
    let session = &winner.data("completeSignIn")["session"];
    assert_eq!(session["methods"], json!(["PASSWORD", "RECOVERY_CODE"]));
    let token = winner.data("completeSignIn")["token"].as_str().unwrap();
    let me = app.graphql(STATUS, json!({}), Some(token)).await;
    assert_eq!(me.data("me")["secondFactor"]["recoveryCodesLeft"], 9);
    // Its owner is told.
    let notice = app.mail.nth_to(&user.email, 3).await;
    assert!(
        notice.subject.contains("recovery code"),
        "{}",
        notice.subject
    );
    assert!(
        notice.text.contains("9 unused codes remain"),
        "{}",
        notice.text
    );
}

#[tokio::test]
async fn a_password_reset_does_not_skip_the_factor() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let user = enrolled(&app, &clock).await;
    app.graphql(
        "mutation($e: String!) { requestPasswordReset(input: {email: $e}) }",
        json!({ "e": user.email }),
        None,
    )
    .await
    .data("requestPasswordReset");
    let link = app.mail.nth_to(&user.email, 3).await.token("ghr_");
    let new_password = "an entirely new passphrase";
    app.graphql(
        "mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { email } }",
        json!({ "t": link, "p": new_password }),
        None,
    )
    .await
    .data("resetPassword");
    let reply = app
        .graphql(LOGIN, json!({ "e": user.email, "p": new_password }), None)
        .await;
    assert_eq!(reply.code(), "SECOND_FACTOR_REQUIRED");
}

#[tokio::test]
async fn under_all_an_aal1_session_may_only_read_me_enrol_and_sign_out() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |s| {
        s.second_factor.require_second_factor = Requirement::All
    })
    .await;
    let (_, token, id) = app.signed_in_user().await;
    let me = app.graphql(STATUS, json!({}), Some(&token)).await;
    assert_eq!(me.data("me")["session"]["assuranceLevel"], "AAL1");
    let refused = [
        "{ me { sessions { id } } }",
        "{ me { securityEvents(first: 1) { edges { cursor } } } }",
        "mutation { refreshSession { expiresAt } }",
        "mutation { revokeOtherSessions }",
        "mutation { resendVerificationEmail }",
        "mutation { regenerateRecoveryCodes { recoveryCodes } }",
        "mutation { removeSecondFactor }",
    ];
    for query in refused {
        let reply = app.graphql(query, json!({}), Some(&token)).await;
        assert_eq!(
            reply.code(),
            "SECOND_FACTOR_ENROLMENT_REQUIRED",
            "{query}: {:?}",
            reply.body
        );
    }
    let revoke = app.revoke_session(&token, &id).await;
    assert_eq!(revoke.code(), "SECOND_FACTOR_ENROLMENT_REQUIRED");
    let change = app
        .change_password(&token, PASSWORD, "another long passphrase")
        .await;
    assert_eq!(change.code(), "SECOND_FACTOR_ENROLMENT_REQUIRED");

    // Enrolling lifts it for this session at once.
    let begun = app.graphql(BEGIN, json!({}), Some(&token)).await;
    let secret = begun.data("beginTotpEnrolment")["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let confirm = json!({ "c": code(&secret, clock.now()) });
    app.graphql(CONFIRM, confirm, Some(&token))
        .await
        .data("confirmTotpEnrolment");
    let reply = app.graphql(refused[0], json!({}), Some(&token)).await;
    reply.data("me");
    app.logout(&token).await.data("logout");
}

#[tokio::test]
async fn an_older_session_must_step_up_once_the_account_has_a_factor() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let (email, token, _) = app.signed_in_user().await;
    // Opened with a password alone, before the factor existed.
    let older = login(&app, &email, None).await;
    let older = older.data("login")["token"].as_str().unwrap().to_owned();
    let begun = app.graphql(BEGIN, json!({}), Some(&token)).await;
    let secret = begun.data("beginTotpEnrolment")["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let confirm = json!({ "c": code(&secret, clock.now()) });
    app.graphql(CONFIRM, confirm, Some(&token))
        .await
        .data("confirmTotpEnrolment");

    let sessions = "{ me { sessions { id } } }";
    app.graphql(sessions, json!({}), Some(&token))
        .await
        .data("me");
    let refused = app.graphql(sessions, json!({}), Some(&older)).await;
    assert_eq!(refused.code(), "AAL2_REQUIRED");
    assert_eq!(refused.status.as_u16(), 403);
    let me = app.graphql(STATUS, json!({}), Some(&older)).await;
    assert_eq!(me.data("me")["session"]["assuranceLevel"], "AAL1");
    // A password-only step-up is refused; with a code it lifts the rule.
    let bare = app
        .graphql(STEP_UP, json!({ "p": PASSWORD }), Some(&older))
        .await;
    assert_eq!(bare.code(), "AAL2_REQUIRED");
    clock.set(clock.now() + TimeDelta::seconds(30));
    let vars = json!({ "p": PASSWORD, "t": code(&secret, clock.now()) });
    let stepped = app.graphql(STEP_UP, vars, Some(&older)).await;
    assert_eq!(
        stepped.data("reauthenticate")["session"]["assuranceLevel"],
        "AAL2"
    );
    app.graphql(sessions, json!({}), Some(&older))
        .await
        .data("me");
}

#[tokio::test]
async fn a_remembered_browser_skips_the_factor_until_the_password_changes() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let user = enrolled(&app, &clock).await;
    clock.set(clock.now() + TimeDelta::seconds(30));
    let pending = challenge(&app, &user.email).await;
    let vars = json!({ "ch": pending, "t": code(&user.secret, clock.now()), "rem": true });
    let first = app.graphql(COMPLETE, vars, None).await;
    let device = first.data("completeSignIn")["knownDevice"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut token = String::new();
    for _ in 0..3 {
        clock.set(clock.now() + TimeDelta::hours(1));
        let again = login(&app, &user.email, Some(&device)).await;
        let session = &again.data("login")["session"];
        assert_eq!(session["methods"], json!(["PASSWORD", "REMEMBERED_DEVICE"]));
        assert_eq!(session["assuranceLevel"], "AAL2");
        token = again.data("login")["token"].as_str().unwrap().to_owned();
    }
    // Remembered is not a code: changing the factor needs one.
    let removal = app
        .graphql("mutation { removeSecondFactor }", json!({}), Some(&token))
        .await;
    assert_eq!(removal.code(), "AAL2_REQUIRED");
    let status = app.graphql(STATUS, json!({}), Some(&token)).await;
    let remembered = &status.data("me")["secondFactor"]["rememberedDevices"];
    assert_eq!(remembered.as_array().unwrap().len(), 1);

    let new_password = "a changed long passphrase";
    app.change_password(&token, PASSWORD, new_password)
        .await
        .data("changePassword");
    let after = app
        .graphql(
            LOGIN,
            json!({ "e": user.email, "p": new_password, "d": device }),
            None,
        )
        .await;
    assert_eq!(after.code(), "SECOND_FACTOR_REQUIRED");
}

#[tokio::test]
async fn a_user_forgets_a_remembered_browser_from_the_list() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let user = enrolled(&app, &clock).await;
    clock.set(clock.now() + TimeDelta::seconds(30));
    let pending = challenge(&app, &user.email).await;
    let vars = json!({ "ch": pending, "t": code(&user.secret, clock.now()), "rem": true });
    let first = app.graphql(COMPLETE, vars, None).await;
    let device = first.data("completeSignIn")["knownDevice"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = first.data("completeSignIn")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = app.graphql(STATUS, json!({}), Some(&token)).await;
    let id = status.data("me")["secondFactor"]["rememberedDevices"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let forget = "mutation($id: String!) { forgetRememberedDevice(input: {id: $id}) }";
    let unknown = app
        .graphql(forget, json!({ "id": "%" }), Some(&token))
        .await;
    assert_eq!(unknown.code(), "NOT_FOUND");
    app.graphql(forget, json!({ "id": id }), Some(&token))
        .await
        .data("forgetRememberedDevice");
    let after = login(&app, &user.email, Some(&device)).await;
    assert_eq!(after.code(), "SECOND_FACTOR_REQUIRED");
}

#[tokio::test]
async fn removing_the_factor_needs_a_fresh_code_and_is_told() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let user = enrolled(&app, &clock).await;
    // Past the fresh age, the enrolling session must step up first.
    clock.set(clock.now() + TimeDelta::minutes(11));
    let stale = app
        .graphql(
            "mutation { removeSecondFactor }",
            json!({}),
            Some(&user.token),
        )
        .await;
    assert_eq!(stale.code(), "REAUTHENTICATION_REQUIRED");
    let vars = json!({ "p": PASSWORD, "r": user.recovery[0] });
    app.graphql(STEP_UP, vars, Some(&user.token))
        .await
        .data("reauthenticate");
    app.graphql(
        "mutation { removeSecondFactor }",
        json!({}),
        Some(&user.token),
    )
    .await
    .data("removeSecondFactor");
    // Files written in the same instant sort in no set order: find it by subject.
    app.mail.nth_to(&user.email, 4).await;
    let subjects: Vec<String> = app
        .mail
        .to(&user.email)
        .into_iter()
        .map(|m| m.subject)
        .collect();
    assert!(
        subjects.iter().any(|s| s.contains("turned off")),
        "{subjects:?}"
    );
    login(&app, &user.email, None).await.data("login");
}

#[tokio::test]
async fn the_secret_is_sealed_at_rest_under_a_named_key() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let user = enrolled(&app, &clock).await;
    let rows = totp_factor::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key_id, "test");
    let raw = Secret::Encoded(user.secret.clone()).to_bytes().unwrap();
    assert!(!rows[0].secret.contains(&user.secret));
    use base64::Engine;
    let stored = base64::engine::general_purpose::STANDARD
        .decode(&rows[0].secret)
        .unwrap();
    assert!(!stored.windows(raw.len()).any(|w| w == raw.as_slice()));
}

#[tokio::test]
async fn support_resets_the_factor_and_signs_everything_out() {
    let clock = Clock::manual(start());
    let database = TestDatabase::create().await;
    let app = spawn_app_with_clock(database.clone(), clock.clone(), |_| {}).await;
    let user = enrolled(&app, &clock).await;
    let out = std::process::Command::new(crate::helpers::BIN)
        .args(["user", "reset-second-factor", &user.email, "--json"])
        .env("GATEHOUSE_DATABASE_URL", &database.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["revokedSessions"], 1);
    app.me(&user.token).await.assert_unauthenticated("REVOKED");
    login(&app, &user.email, None).await.data("login");
    let notice = app.mail.nth_to(&user.email, 3).await;
    assert!(notice.subject.contains("support"), "{}", notice.subject);
    // Nothing left to reset.
    let again = std::process::Command::new(crate::helpers::BIN)
        .args(["user", "reset-second-factor", &user.email])
        .env("GATEHOUSE_DATABASE_URL", &database.url)
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[tokio::test]
async fn in_cookie_mode_only_the_cookie_skips_the_factor() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |s| {
        s.web.session_cookie = true;
        s.web.cookie_secure = false;
    })
    .await;
    let user = enrolled(&app, &clock).await;
    clock.set(clock.now() + TimeDelta::seconds(30));
    let pending = challenge(&app, &user.email).await;
    let vars = json!({ "ch": pending, "t": code(&user.secret, clock.now()), "rem": true });
    let first = app.graphql(COMPLETE, vars, None).await;
    // Scripts never see the device token: only its HttpOnly cookie holds it.
    assert!(first.data("completeSignIn")["knownDevice"].is_null());
    let device = first
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find_map(|c| {
            let value = c.strip_prefix("gatehouse_device=")?;
            Some(value.split(';').next()?.to_owned())
        })
        .expect("a device cookie");
    // The cookie's value, leaked and sent in the request: not enough.
    let by_script = login(&app, &user.email, Some(&device)).await;
    assert_eq!(by_script.code(), "SECOND_FACTOR_REQUIRED");
    // Sent by the browser in its cookie: remembered.
    let by_cookie = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .header("cookie", format!("gatehouse_device={device}"))
        .body(
            json!({ "query": LOGIN, "variables": { "e": user.email, "p": PASSWORD } }).to_string(),
        )
        .send()
        .await
        .unwrap();
    let body: Value = by_cookie.json().await.unwrap();
    let methods = &body["data"]["login"]["session"]["methods"];
    assert_eq!(methods, &json!(["PASSWORD", "REMEMBERED_DEVICE"]), "{body}");
}

#[tokio::test]
async fn changing_the_password_does_not_stand_in_for_a_code() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let user = enrolled(&app, &clock).await;
    clock.set(clock.now() + TimeDelta::minutes(11));
    let changed = app
        .change_password(&user.token, PASSWORD, "a thief's own passphrase")
        .await;
    changed.data("changePassword");
    for removal in [
        "mutation { removeSecondFactor }",
        "mutation { regenerateRecoveryCodes { recoveryCodes } }",
    ] {
        let reply = app.graphql(removal, json!({}), Some(&user.token)).await;
        assert_eq!(reply.code(), "REAUTHENTICATION_REQUIRED", "{removal}");
    }
}

#[tokio::test]
async fn a_stolen_session_cannot_lock_the_owners_codes() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let (email, token, _) = app.signed_in_user().await;
    let thief = login(&app, &email, None).await;
    let thief = thief.data("login")["token"].as_str().unwrap().to_owned();
    let begun = app.graphql(BEGIN, json!({}), Some(&token)).await;
    let secret = begun.data("beginTotpEnrolment")["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let confirm = json!({ "c": code(&secret, clock.now()) });
    app.graphql(CONFIRM, confirm, Some(&token))
        .await
        .data("confirmTotpEnrolment");
    // Nothing is waiting: refused before any code is counted.
    for _ in 0..6 {
        let reply = app
            .graphql(CONFIRM, json!({ "c": "000000" }), Some(&thief))
            .await;
        assert_eq!(reply.code(), "ENROLMENT_EXPIRED");
    }
    // Step-ups on the stolen session count against that session alone.
    for _ in 0..6 {
        let vars = json!({ "p": PASSWORD, "t": "000000" });
        app.graphql(STEP_UP, vars, Some(&thief)).await;
    }
    let vars = json!({ "p": PASSWORD, "t": "000000" });
    assert_eq!(
        app.graphql(STEP_UP, vars, Some(&thief)).await.code(),
        "RATE_LIMITED"
    );
    clock.set(clock.now() + TimeDelta::seconds(30));
    let pending = challenge(&app, &email).await;
    let owner = complete(&app, &pending, Some(&code(&secret, clock.now())), None).await;
    owner.data("completeSignIn");
}

#[tokio::test]
async fn the_owners_right_code_does_not_wash_away_a_guessers_wrong_ones() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |_| {}).await;
    let user = enrolled(&app, &clock).await;
    for _ in 0..2 {
        let pending = challenge(&app, &user.email).await;
        for _ in 0..2 {
            let wrong = complete(&app, &pending, None, Some("aaaa-aaaa-aaaa")).await;
            assert_eq!(wrong.code(), "INVALID_SECOND_FACTOR");
        }
    }
    clock.set(clock.now() + TimeDelta::seconds(30));
    let pending = challenge(&app, &user.email).await;
    let owner = complete(&app, &pending, Some(&code(&user.secret, clock.now())), None).await;
    owner.data("completeSignIn");
    // Four wrong and one right make five: the next code waits for the lock.
    let pending = challenge(&app, &user.email).await;
    let next = complete(&app, &pending, None, Some("aaaa-aaaa-aaaa")).await;
    assert_eq!(next.code(), "RATE_LIMITED");
}

#[tokio::test]
async fn wrong_codes_at_once_spend_a_challenge_after_three() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |s| s.login_limits.code_max_failures = 100).await;
    let user = enrolled(&app, &clock).await;
    let pending = challenge(&app, &user.email).await;
    let guesses = (0..20).map(|_| complete(&app, &pending, None, Some("aaaa-aaaa-aaaa")));
    let replies = join_all(guesses).await;
    let checked = replies
        .iter()
        .filter(|r| r.code() == "INVALID_SECOND_FACTOR")
        .count();
    assert_eq!(
        checked,
        3,
        "{:?}",
        replies
            .iter()
            .map(|r| r.code().to_owned())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn under_all_removing_the_factor_restricts_every_session_again() {
    let clock = Clock::manual(start());
    let app = app_at(&clock, |s| {
        s.second_factor.require_second_factor = Requirement::All
    })
    .await;
    let user = enrolled(&app, &clock).await;
    app.graphql("{ me { sessions { id } } }", json!({}), Some(&user.token))
        .await
        .data("me");
    app.graphql(
        "mutation { removeSecondFactor }",
        json!({}),
        Some(&user.token),
    )
    .await
    .data("removeSecondFactor");
    let me = app.graphql(STATUS, json!({}), Some(&user.token)).await;
    assert_eq!(me.data("me")["session"]["assuranceLevel"], "AAL1");
    let reply = app
        .graphql("{ me { sessions { id } } }", json!({}), Some(&user.token))
        .await;
    assert_eq!(reply.code(), "SECOND_FACTOR_ENROLMENT_REQUIRED");
}
