//! Signing in with a code sent by e-mail: the whole flow through the
//! outbox's `.eml` files, answers alike for unknown addresses, codes
//! stored only as hashes, single use, wrong guesses and expiry, the second
//! factor after it, and an address signed up first by a stranger.

use chrono::{TimeDelta, Utc};
use sea_orm::EntityTrait;
use serde_json::json;

use gatehouse::clock::Clock;

use crate::helpers::{PASSWORD, Reply, TestApp, TestDatabase, spawn_app_on, spawn_app_with_clock};
use crate::mailbox::{Inbox, Mail};
use crate::passkeys::{enrol_totp, totp};

const REQUEST: &str =
    "mutation($e: String!) { requestEmailSignInCode(email: $e) { challenge expiresAt } }";
const SIGN_IN: &str = "mutation($ch: String!, $c: String!) {
    signInWithEmailCode(input: {challenge: $ch, code: $c}) {
      token user { email emailVerified } session { methods assuranceLevel } } }";

fn on(settings: &mut gatehouse::config::Settings) {
    settings.other_ways_in.email_sign_in = true;
}

async fn app() -> TestApp {
    spawn_app_on(TestDatabase::create().await, on).await
}

async fn request(app: &TestApp, email: &str) -> String {
    let reply = app.graphql(REQUEST, json!({ "e": email }), None).await;
    reply.data("requestEmailSignInCode")["challenge"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn sign_in(app: &TestApp, challenge: &str, code: &str) -> Reply {
    app.graphql(SIGN_IN, json!({ "ch": challenge, "c": code }), None)
        .await
}

/// The 8 digits in a sign-in code message.
fn code_in(mail: &Mail) -> String {
    assert!(mail.subject.contains("sign-in code"), "{}", mail.subject);
    let digits: Vec<&str> = mail
        .text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| w.len() == 8)
        .collect();
    assert_eq!(digits.len(), 1, "{}", mail.text);
    assert!(mail.html.contains(digits[0]));
    digits[0].to_owned()
}

#[tokio::test]
async fn a_code_from_the_mail_signs_in_once_with_its_challenge() {
    let app = app().await;
    app.verified_user("ana@example.com").await;
    let challenge = request(&app, "ana@example.com").await;
    assert!(challenge.starts_with("ghm_"));
    let code = code_in(&app.mail.nth_to("ana@example.com", 2).await);

    // Only its hash, keyed by the challenge, is at rest.
    let rows = entity::email_sign_in_code::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = format!("{:?}", rows[0]);
    assert!(!row.contains(&code) && !row.contains(&challenge), "{row}");

    // Another challenge (another browser) cannot use it.
    let other = request(&app, "ana@example.com").await;
    assert_eq!(
        sign_in(&app, &other, &code).await.code(),
        "INVALID_EMAIL_CODE"
    );

    let signed_in = sign_in(&app, &challenge, &code).await;
    let signed_in = signed_in.data("signInWithEmailCode");
    assert_eq!(signed_in["session"]["methods"], json!(["EMAIL_CODE"]));
    assert_eq!(signed_in["session"]["assuranceLevel"], "AAL1");
    assert_eq!(signed_in["user"]["email"], "ana@example.com");
    let replayed = sign_in(&app, &challenge, &code).await;
    assert_eq!(replayed.code(), "INVALID_EMAIL_CODE");
}

#[tokio::test]
async fn an_unknown_address_gets_the_same_answer_and_no_mail() {
    let app = app().await;
    app.verified_user("ben@example.com").await;
    let known = app
        .graphql(REQUEST, json!({ "e": "ben@example.com" }), None)
        .await;
    let unknown = app
        .graphql(REQUEST, json!({ "e": "nobody@example.com" }), None)
        .await;
    let shape = |reply: &Reply| {
        let data = reply.data("requestEmailSignInCode");
        let challenge = data["challenge"].as_str().unwrap();
        (reply.status, challenge.len(), challenge[..4].to_owned())
    };
    assert_eq!(shape(&known), shape(&unknown));
    let unknown = unknown.data("requestEmailSignInCode")["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    // Both rows land after the answer; a guess meets each alike.
    let code = code_in(&app.mail.nth_to("ben@example.com", 2).await);
    for _ in 0..50 {
        let rows = entity::email_sign_in_code::Entity::find()
            .all(&app.db)
            .await
            .unwrap();
        if rows.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        sign_in(&app, &unknown, &code).await.code(),
        "INVALID_EMAIL_CODE"
    );
    assert!(app.mail.to("nobody@example.com").is_empty());
}

#[tokio::test]
async fn wrong_guesses_spend_the_challenge_and_codes_expire_in_ten_minutes() {
    let clock = Clock::manual(Utc::now());
    let app = spawn_app_with_clock(TestDatabase::create().await, clock.clone(), on).await;
    app.verified_user("cy@example.com").await;
    let challenge = request(&app, "cy@example.com").await;
    let code = code_in(&app.mail.nth_to("cy@example.com", 2).await);
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..5 {
        assert_eq!(
            sign_in(&app, &challenge, wrong).await.code(),
            "INVALID_EMAIL_CODE"
        );
    }
    assert_eq!(
        sign_in(&app, &challenge, &code).await.code(),
        "INVALID_EMAIL_CODE"
    );

    let challenge = request(&app, "cy@example.com").await;
    let code = code_in(&app.mail.nth_to("cy@example.com", 3).await);
    clock.set(clock.now() + TimeDelta::minutes(10) + TimeDelta::seconds(1));
    assert_eq!(
        sign_in(&app, &challenge, &code).await.code(),
        "INVALID_EMAIL_CODE"
    );
}

#[tokio::test]
async fn a_second_factor_still_follows_an_email_code() {
    let app = app().await;
    let token = app.verified_user("di@example.com").await;
    let secret = enrol_totp(&app, &token).await;
    let challenge = request(&app, "di@example.com").await;
    // Mail: the link, the factor's notice, then the code.
    let code = code_in(&app.mail.nth_to("di@example.com", 3).await);
    let refused = sign_in(&app, &challenge, &code).await;
    assert_eq!(refused.code(), "SECOND_FACTOR_REQUIRED");
    let second = refused.body["errors"][0]["extensions"]["challenge"].clone();
    let completed = app
        .graphql(
            "mutation($ch: String!, $t: String!) {
               completeSignIn(input: {challenge: $ch, totpCode: $t}) {
                 session { methods assuranceLevel } } }",
            json!({ "ch": second, "t": totp(&secret).generate(Utc::now().timestamp() as u64 + 30) }),
            None,
        )
        .await;
    let session = &completed.data("completeSignIn")["session"];
    assert_eq!(session["methods"], json!(["TOTP", "EMAIL_CODE"]));
    assert_eq!(session["assuranceLevel"], "AAL2");
}

#[tokio::test]
async fn the_owner_of_an_address_a_stranger_signed_up_takes_it_back_with_a_code() {
    let app = app().await;
    // The stranger signs the address up with a password, never proves it,
    // and keeps a session.
    let stranger = app.register("eve@example.com", PASSWORD).await;
    let stranger = stranger.data("register")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // ...and asks to move it to his own address, keeping the link.
    let moved = app
        .graphql(
            "mutation($p: String!, $e: String!) { changeEmail(input: {password: $p, newEmail: $e}) }",
            json!({ "p": PASSWORD, "e": "stranger@evil.example" }),
            Some(&stranger),
        )
        .await;
    assert_eq!(moved.data("changeEmail"), true);
    let move_link = app
        .mail
        .nth_to("stranger@evil.example", 1)
        .await
        .token("ghv_");
    let challenge = request(&app, "eve@example.com").await;
    let code = code_in(&app.mail.nth_to("eve@example.com", 3).await);
    let owner = sign_in(&app, &challenge, &code).await;
    let owner = owner.data("signInWithEmailCode");
    assert_eq!(owner["user"]["emailVerified"], true);
    let owner = owner["token"].as_str().unwrap();
    app.me(&stranger).await.assert_unauthenticated("REVOKED");
    // His pending move cannot take the claimed account away.
    let verify = app
        .graphql(
            "mutation($t: String!) { verifyEmail(input: {token: $t}) { email } }",
            json!({ "t": move_link }),
            None,
        )
        .await;
    assert_eq!(verify.code(), "INVALID_VERIFICATION_TOKEN");
    assert_eq!(
        app.login("eve@example.com", PASSWORD).await.code(),
        "INVALID_CREDENTIALS"
    );
    let me = app
        .graphql("{ me { hasPassword } }", json!({}), Some(owner))
        .await;
    assert_eq!(me.data("me")["hasPassword"], false);
}

#[tokio::test]
async fn email_codes_are_off_unless_turned_on() {
    let app = spawn_app_on(TestDatabase::create().await, |_| {}).await;
    let reply = app
        .graphql(REQUEST, json!({ "e": "x@example.com" }), None)
        .await;
    assert_eq!(reply.code(), "EMAIL_SIGN_IN_DISABLED");
    let options = app
        .graphql(
            "{ signInOptions { emailCode providers { id } } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(
        options.data("signInOptions"),
        &json!({ "emailCode": false, "providers": [] })
    );
}
