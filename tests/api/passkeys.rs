//! Passkeys through the real router, on SQLite and PostgreSQL, answered by
//! webauthn-authenticator-rs's software authenticator (the browser's own
//! path is `tests/clients/browser-app.test.mjs`): registration, sign-in
//! without an address, the second factor, step-up, passkey-only accounts,
//! and what a stranger could send: another origin or RP ID, a replayed,
//! expired or foreign ceremony, a cloned authenticator, a deleted passkey,
//! two finishes at once, and a ceremony finished on another node.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{TimeDelta, Utc};
use entity::passkey;
use futures_util::future::join_all;
use gatehouse::clock::Clock;
use gatehouse::config::Settings;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};
use webauthn_authenticator_rs::AuthenticatorBackend;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::Url;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

use crate::helpers::{PASSWORD, TestApp, TestDatabase, spawn_app_on, spawn_app_with_clock};
use crate::mailbox::Inbox;

/// The page the ceremonies run on: any port of localhost is the default
/// relying party, for development.
const ORIGIN: &str = "http://localhost:5173";

const BEGIN_REGISTRATION: &str =
    "mutation { beginPasskeyRegistration { ceremony options expiresAt } }";
const FINISH_REGISTRATION: &str = "mutation($c: String!, $r: JSON!, $n: String) {
    finishPasskeyRegistration(input: {ceremony: $c, credential: $r, name: $n}) {
      id name createdAt lastUsedAt backedUp authenticator } }";
const BEGIN_SIGN_IN: &str = "mutation { beginPasskeySignIn { ceremony options } }";
const SIGN_IN: &str = "mutation($c: String!, $r: JSON!) {
    signInWithPasskey(input: {ceremony: $c, credential: $r}) {
      token user { id email } session { methods assuranceLevel } } }";
const PASSKEYS: &str = "{ me { passkeys { id name lastUsedAt backedUp authenticator } } }";
const EVENTS: &str = "{ me { securityEvents(first: 20) { edges { node { kind passkeyName } } } } }";

/// A software passkey that claims user verification, as a phone or laptop
/// would after its PIN or biometric.
struct Authenticator {
    soft: SoftPasskey,
    origin: Url,
    /// The credential it made, base64url.
    credential_id: Option<String>,
}

impl Authenticator {
    fn new() -> Self {
        Self::on(ORIGIN)
    }

    /// One whose browser runs the page at `origin`.
    fn on(origin: &str) -> Self {
        Self {
            soft: SoftPasskey::new(true),
            origin: Url::parse(origin).unwrap(),
            credential_id: None,
        }
    }

    /// The browser's `credential.toJSON()` for creation `options`. The
    /// software key cannot be discoverable; the server's checks are the
    /// same either way.
    fn create(&mut self, options: &Value) -> Value {
        let mut options = options.clone();
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        selection["requireResidentKey"] = json!(false);
        selection["residentKey"] = json!("discouraged");
        let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
        let made = self
            .soft
            .perform_register(self.origin.clone(), options.public_key, 60_000)
            .expect("the authenticator registers");
        let made = serde_json::to_value(made).unwrap();
        self.credential_id = Some(made["rawId"].as_str().unwrap().to_owned());
        made
    }

    /// The browser's answer to request `options`; for a discoverable
    /// request, as a resident key answers: its own credential, and the
    /// account's user handle (which the signature does not cover).
    fn get(&mut self, options: &Value, user_id: Option<&str>) -> Value {
        let mut options = options.clone();
        let id = self.credential_id.clone().expect("a passkey was made");
        if options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            options["publicKey"]["allowCredentials"] = json!([{ "type": "public-key", "id": id }]);
        }
        let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
        let answer = self
            .soft
            .perform_auth(self.origin.clone(), options.public_key, 60_000)
            .expect("the authenticator signs");
        let mut answer = serde_json::to_value(answer).unwrap();
        if let Some(user) = user_id {
            let handle = uuid::Uuid::parse_str(user).unwrap();
            answer["response"]["userHandle"] = json!(URL_SAFE_NO_PAD.encode(handle.as_bytes()));
        }
        answer
    }
}

/// `beginPasskey…` then the ceremony token and options.
async fn begin(
    app: &TestApp,
    query: &str,
    variables: Value,
    token: Option<&str>,
) -> (String, Value) {
    let reply = app.graphql(query, variables, token).await;
    let body = &query[query.find('{').unwrap() + 1..];
    let field: String = body
        .trim_start()
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let begun = reply.data(&field);
    let ceremony = begun["ceremony"].as_str().unwrap().to_owned();
    assert!(ceremony.starts_with("ghw_"), "{ceremony}");
    (ceremony, begun["options"].clone())
}

/// Adds a passkey to the signed-in account of `token`.
async fn add_passkey(app: &TestApp, token: &str, key: &mut Authenticator, name: &str) -> Value {
    let (ceremony, options) = begin(app, BEGIN_REGISTRATION, json!({}), Some(token)).await;
    let made = key.create(&options);
    let reply = app
        .graphql(
            FINISH_REGISTRATION,
            json!({ "c": ceremony, "r": made, "n": name }),
            Some(token),
        )
        .await;
    reply.data("finishPasskeyRegistration").clone()
}

async fn user_id(app: &TestApp, token: &str) -> String {
    let me = app
        .graphql("{ me { user { id } } }", json!({}), Some(token))
        .await;
    me.data("me")["user"]["id"].as_str().unwrap().to_owned()
}

/// Signs in with `key` and no address; the reply.
async fn sign_in(app: &TestApp, key: &mut Authenticator, user: &str) -> crate::helpers::Reply {
    let (ceremony, options) = begin(app, BEGIN_SIGN_IN, json!({}), None).await;
    let answer = key.get(&options, Some(user));
    app.graphql(SIGN_IN, json!({ "c": ceremony, "r": answer }), None)
        .await
}

fn event_kinds(events: &Value) -> Vec<(String, Option<String>)> {
    events["securityEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let node = &e["node"];
            let name = node["passkeyName"].as_str().map(str::to_owned);
            (node["kind"].as_str().unwrap().to_owned(), name)
        })
        .collect()
}

/// A node that is the development relying party: `localhost`, any port.
fn localhost(settings: &mut Settings) {
    settings.passkeys.webauthn_rp_id = Some("localhost".into());
}

async fn app() -> TestApp {
    spawn_app_on(TestDatabase::create().await, localhost).await
}

#[tokio::test]
async fn a_passkey_is_added_listed_and_signs_in_without_an_address_at_aal2() {
    let app = app().await;
    let (email, token, _) = app.signed_in_user().await;
    let user = user_id(&app, &token).await;
    let mut key = Authenticator::new();

    let (ceremony, options) = begin(&app, BEGIN_REGISTRATION, json!({}), Some(&token)).await;
    let public_key = &options["publicKey"];
    assert_eq!(public_key["rp"]["id"], "localhost");
    assert_eq!(
        public_key["authenticatorSelection"]["residentKey"],
        "required"
    );
    assert_eq!(
        public_key["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(public_key["user"]["name"], email.as_str());
    let made = key.create(&options);
    let added = app
        .graphql(
            FINISH_REGISTRATION,
            json!({ "c": ceremony, "r": made, "n": " Laptop " }),
            Some(&token),
        )
        .await;
    let added = added.data("finishPasskeyRegistration");
    assert_eq!(added["name"], "Laptop");
    assert_eq!(added["lastUsedAt"], Value::Null);
    assert_eq!(added["backedUp"], false);

    // The authenticator is excluded from registering again.
    let (_, again) = begin(&app, BEGIN_REGISTRATION, json!({}), Some(&token)).await;
    let excluded = again["publicKey"]["excludeCredentials"].as_array().unwrap();
    assert_eq!(excluded.len(), 1);
    assert_eq!(
        excluded[0]["id"],
        key.credential_id.clone().unwrap().as_str()
    );

    let (ceremony, options) = begin(&app, BEGIN_SIGN_IN, json!({}), None).await;
    assert_eq!(options["mediation"], "conditional");
    assert_eq!(options["publicKey"]["userVerification"], "required");
    let answer = key.get(&options, Some(&user));
    let signed_in = app
        .graphql(SIGN_IN, json!({ "c": ceremony, "r": answer }), None)
        .await;
    let signed_in = signed_in.data("signInWithPasskey");
    assert_eq!(signed_in["user"]["email"], email.as_str());
    assert_eq!(signed_in["session"]["methods"], json!(["PASSKEY"]));
    assert_eq!(signed_in["session"]["assuranceLevel"], "AAL2");
    let new_token = signed_in["token"].as_str().unwrap();

    let listed = app.graphql(PASSKEYS, json!({}), Some(new_token)).await;
    let listed = listed.data("me")["passkeys"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert!(listed[0]["lastUsedAt"].is_string(), "{listed:?}");

    let events = app.graphql(EVENTS, json!({}), Some(new_token)).await;
    let kinds = event_kinds(events.data("me"));
    assert!(
        kinds.contains(&("PASSKEY_ADDED".into(), Some("Laptop".into()))),
        "{kinds:?}"
    );

    app.mail.titled(&email, "passkey was added").await;
}

#[tokio::test]
async fn a_ceremony_is_used_once_and_an_answer_cannot_be_replayed() {
    let app = app().await;
    let (_, token, _) = app.signed_in_user().await;
    let user = user_id(&app, &token).await;
    let mut key = Authenticator::new();
    add_passkey(&app, &token, &mut key, "Phone").await;

    let (ceremony, options) = begin(&app, BEGIN_SIGN_IN, json!({}), None).await;
    let answer = key.get(&options, Some(&user));
    let first = app
        .graphql(SIGN_IN, json!({ "c": ceremony, "r": answer }), None)
        .await;
    first.data("signInWithPasskey");
    let again = app
        .graphql(SIGN_IN, json!({ "c": ceremony, "r": answer }), None)
        .await;
    assert_eq!(again.code(), "INVALID_CEREMONY");

    // The same signed answer under a new ceremony: its challenge is not this one's.
    let (fresh, _) = begin(&app, BEGIN_SIGN_IN, json!({}), None).await;
    let replayed = app
        .graphql(SIGN_IN, json!({ "c": fresh, "r": answer }), None)
        .await;
    assert_eq!(replayed.code(), "INVALID_PASSKEY");

    let made_up = app
        .graphql(SIGN_IN, json!({ "c": "ghw_nope", "r": answer }), None)
        .await;
    assert_eq!(made_up.code(), "INVALID_CEREMONY");
}

#[tokio::test]
async fn two_finishes_of_one_ceremony_at_once_open_exactly_one_session() {
    let app = app().await;
    let (_, token, _) = app.signed_in_user().await;
    let user = user_id(&app, &token).await;
    let mut key = Authenticator::new();
    add_passkey(&app, &token, &mut key, "Phone").await;
    let (ceremony, options) = begin(&app, BEGIN_SIGN_IN, json!({}), None).await;
    let answer = key.get(&options, Some(&user));
    let variables = json!({ "c": ceremony, "r": answer });
    let replies = join_all((0..8).map(|_| app.graphql(SIGN_IN, variables.clone(), None))).await;
    let won = replies
        .iter()
        .filter(|r| r.body.get("errors").is_none())
        .count();
    assert_eq!(
        won,
        1,
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|r| r.body.get("errors").is_some()) {
        assert_eq!(reply.code(), "INVALID_CEREMONY", "{}", reply.body);
    }
}

#[tokio::test]
async fn another_origin_or_relying_party_is_refused() {
    let app = app().await;
    let (_, token, _) = app.signed_in_user().await;
    let user = user_id(&app, &token).await;

    // A phishing page's origin, in the signed client data.
    let (ceremony, options) = begin(&app, BEGIN_REGISTRATION, json!({}), Some(&token)).await;
    let made = Authenticator::on("https://gatehouse-login.example").create(&options);
    let reply = app
        .graphql(
            FINISH_REGISTRATION,
            json!({ "c": ceremony, "r": made }),
            Some(&token),
        )
        .await;
    assert_eq!(reply.code(), "INVALID_PASSKEY");

    // A key scoped to another relying party.
    let (ceremony, mut options) = begin(&app, BEGIN_REGISTRATION, json!({}), Some(&token)).await;
    options["publicKey"]["rp"]["id"] = json!("example.com");
    let made = Authenticator::on("https://example.com").create(&options);
    let reply = app
        .graphql(
            FINISH_REGISTRATION,
            json!({ "c": ceremony, "r": made }),
            Some(&token),
        )
        .await;
    assert_eq!(reply.code(), "INVALID_PASSKEY");

    let mut key = Authenticator::new();
    add_passkey(&app, &token, &mut key, "Phone").await;
    let (ceremony, mut options) = begin(&app, BEGIN_SIGN_IN, json!({}), None).await;
    options["publicKey"]["rpId"] = json!("example.com");
    key.origin = Url::parse("https://example.com").unwrap();
    let answer = key.get(&options, Some(&user));
    let reply = app
        .graphql(SIGN_IN, json!({ "c": ceremony, "r": answer }), None)
        .await;
    assert_eq!(reply.code(), "INVALID_PASSKEY");

    let none = app.graphql(PASSKEYS, json!({}), Some(&token)).await;
    assert_eq!(none.data("me")["passkeys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_node_with_no_relying_party_takes_no_passkeys_and_says_what_to_set() {
    let app = spawn_app_on(TestDatabase::create().await, |_| {}).await;
    let reply = app.graphql(BEGIN_SIGN_IN, json!({}), None).await;
    assert_eq!(reply.code(), "PASSKEYS_NOT_CONFIGURED");
    assert!(
        reply.message().contains("GATEHOUSE_WEBAUTHN_RP_ID"),
        "{}",
        reply.body
    );
    let sign_up = app
        .graphql(
            "mutation { beginPasskeySignUp(email: \"a@example.com\") { ceremony } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(sign_up.code(), "PASSKEYS_NOT_CONFIGURED");
}

#[tokio::test]
async fn an_expired_ceremony_is_refused() {
    let clock = Clock::manual(Utc::now());
    let app = spawn_app_with_clock(TestDatabase::create().await, clock.clone(), localhost).await;
    let (_, token, _) = app.signed_in_user().await;
    let (ceremony, options) = begin(&app, BEGIN_REGISTRATION, json!({}), Some(&token)).await;
    let made = Authenticator::new().create(&options);
    clock.set(clock.now() + TimeDelta::minutes(5) + TimeDelta::seconds(1));
    let reply = app
        .graphql(
            FINISH_REGISTRATION,
            json!({ "c": ceremony, "r": made }),
            Some(&token),
        )
        .await;
    assert_eq!(reply.code(), "INVALID_CEREMONY");
}

#[tokio::test]
async fn another_accounts_ceremony_is_refused() {
    let app = app().await;
    let (_, alice, _) = app.signed_in_user().await;
    let (_, mallory, _) = app.signed_in_user().await;
    // Mallory finishes Alice's registration with her own authenticator.
    let (ceremony, options) = begin(&app, BEGIN_REGISTRATION, json!({}), Some(&alice)).await;
    let made = Authenticator::new().create(&options);
    let reply = app
        .graphql(
            FINISH_REGISTRATION,
            json!({ "c": ceremony, "r": made }),
            Some(&mallory),
        )
        .await;
    assert_eq!(reply.code(), "INVALID_CEREMONY");
    // Her attempt did not use it up: it is still Alice's to finish.
    let mine = Authenticator::new().create(&options);
    let finished = app
        .graphql(
            FINISH_REGISTRATION,
            json!({ "c": ceremony, "r": mine }),
            Some(&alice),
        )
        .await;
    finished.data("finishPasskeyRegistration");

    // Mallory's passkey cannot answer for Alice's user handle.
    let mut key = Authenticator::new();
    add_passkey(&app, &mallory, &mut key, "Mallory's").await;
    let alice_id = user_id(&app, &alice).await;
    let reply = sign_in(&app, &mut key, &alice_id).await;
    assert_eq!(reply.code(), "INVALID_PASSKEY");
    // Nor step Alice's session up.
    let mut alice_key = Authenticator::new();
    add_passkey(&app, &alice, &mut alice_key, "Alice's").await;
    let (ceremony, options) = begin(
        &app,
        "mutation { beginPasskeyReauthentication { ceremony options } }",
        json!({}),
        Some(&alice),
    )
    .await;
    key.credential_id = key.credential_id.clone();
    let mut opts = options.clone();
    opts["publicKey"]["allowCredentials"] = json!([]);
    let answer = key.get(&opts, None);
    let reply = app
        .graphql(
            "mutation($c: String!, $r: JSON!) { reauthenticate(input: {passkey: {ceremony: $c, credential: $r}}) { session { id } } }",
            json!({ "c": ceremony, "r": answer }),
            Some(&alice),
        )
        .await;
    assert_eq!(reply.code(), "INVALID_PASSKEY");
}

#[tokio::test]
async fn a_ceremony_begun_on_one_node_finishes_on_another() {
    let database = TestDatabase::create().await;
    let one = spawn_app_on(database.clone(), localhost).await;
    let two = spawn_app_on(database, localhost).await;
    let (_, token, _) = one.signed_in_user().await;
    let user = user_id(&one, &token).await;
    let mut key = Authenticator::new();
    let (ceremony, options) = begin(&one, BEGIN_REGISTRATION, json!({}), Some(&token)).await;
    let made = key.create(&options);
    let added = two
        .graphql(
            FINISH_REGISTRATION,
            json!({ "c": ceremony, "r": made }),
            Some(&token),
        )
        .await;
    added.data("finishPasskeyRegistration");
    let (ceremony, options) = begin(&two, BEGIN_SIGN_IN, json!({}), None).await;
    let answer = key.get(&options, Some(&user));
    let signed_in = one
        .graphql(SIGN_IN, json!({ "c": ceremony, "r": answer }), None)
        .await;
    assert_eq!(
        signed_in.data("signInWithPasskey")["session"]["assuranceLevel"],
        "AAL2"
    );
}

#[tokio::test]
async fn a_counter_that_goes_backwards_is_recorded_and_refused() {
    let app = app().await;
    let (_, token, _) = app.signed_in_user().await;
    let user = user_id(&app, &token).await;
    let mut key = Authenticator::new();
    let added = add_passkey(&app, &token, &mut key, "Cloned").await;
    sign_in(&app, &mut key, &user)
        .await
        .data("signInWithPasskey");

    // Another copy of the key has been used 100 times since: the server
    // holds its counter, and this copy's next count is lower.
    let id = uuid::Uuid::parse_str(added["id"].as_str().unwrap()).unwrap();
    let row = passkey::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let mut credential: Value = serde_json::from_str(&row.credential).unwrap();
    credential["cred"]["counter"] = json!(100);
    let mut active: passkey::ActiveModel = row.into();
    active.sign_count = Set(100);
    active.credential = Set(credential.to_string());
    active.update(&app.db).await.unwrap();

    let reply = sign_in(&app, &mut key, &user).await;
    assert_eq!(reply.code(), "INVALID_PASSKEY");
    let events = app.graphql(EVENTS, json!({}), Some(&token)).await;
    let kinds = event_kinds(events.data("me"));
    assert!(
        kinds.contains(&("PASSKEY_COUNTER_REGRESSED".into(), Some("Cloned".into()))),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_deleted_passkey_no_longer_signs_in() {
    let app = app().await;
    let (email, token, _) = app.signed_in_user().await;
    let user = user_id(&app, &token).await;
    let mut key = Authenticator::new();
    let added = add_passkey(&app, &token, &mut key, "Old phone").await;
    let deleted = app
        .graphql(
            "mutation($id: ID!) { deletePasskey(id: $id) }",
            json!({ "id": added["id"] }),
            Some(&token),
        )
        .await;
    assert_eq!(deleted.data("deletePasskey"), true);
    let reply = sign_in(&app, &mut key, &user).await;
    assert_eq!(reply.code(), "INVALID_PASSKEY");
    let events = app.graphql(EVENTS, json!({}), Some(&token)).await;
    let kinds = event_kinds(events.data("me"));
    assert!(
        kinds.contains(&("PASSKEY_REMOVED".into(), Some("Old phone".into()))),
        "{kinds:?}"
    );
    app.mail.titled(&email, "passkey was removed").await;
}

#[tokio::test]
async fn a_passkey_answers_the_second_factor_and_steps_a_session_up() {
    let app = app().await;
    let (email, token, _) = app.signed_in_user().await;
    let mut key = Authenticator::new();
    add_passkey(&app, &token, &mut key, "Laptop").await;
    enrol_totp(&app, &token).await;

    let login = app.login(&email, PASSWORD).await;
    assert_eq!(login.code(), "SECOND_FACTOR_REQUIRED");
    let extensions = &login.body["errors"][0]["extensions"];
    let methods = extensions["methods"].as_array().unwrap();
    assert!(methods.contains(&json!("PASSKEY")), "{methods:?}");
    let challenge = extensions["challenge"].as_str().unwrap();
    let (ceremony, options) = begin(
        &app,
        "mutation($ch: String!) { beginPasskeySecondFactor(challenge: $ch) { ceremony options } }",
        json!({ "ch": challenge }),
        None,
    )
    .await;
    let allowed = options["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1);
    let answer = key.get(&options, None);
    let completed = app
        .graphql(
            "mutation($ch: String!, $c: String!, $r: JSON!) {
               completeSignIn(input: {challenge: $ch, passkey: {ceremony: $c, credential: $r}}) {
                 token session { methods assuranceLevel } } }",
            json!({ "ch": challenge, "c": ceremony, "r": answer }),
            None,
        )
        .await;
    let completed = completed.data("completeSignIn");
    assert_eq!(
        completed["session"]["methods"],
        json!(["PASSWORD", "PASSKEY"])
    );
    assert_eq!(completed["session"]["assuranceLevel"], "AAL2");

    // Step-up with the passkey alone.
    let fresh = completed["token"].as_str().unwrap();
    let (ceremony, options) = begin(
        &app,
        "mutation { beginPasskeyReauthentication { ceremony options } }",
        json!({}),
        Some(fresh),
    )
    .await;
    let answer = key.get(&options, None);
    let stepped = app
        .graphql(
            "mutation($c: String!, $r: JSON!) {
               reauthenticate(input: {passkey: {ceremony: $c, credential: $r}}) {
                 session { methods assuranceLevel authenticatedAt } } }",
            json!({ "c": ceremony, "r": answer }),
            Some(fresh),
        )
        .await;
    let session = &stepped.data("reauthenticate")["session"];
    assert_eq!(session["methods"], json!(["PASSKEY"]));
    assert_eq!(session["assuranceLevel"], "AAL2");
}

/// The authenticator app for a base32 secret.
pub(crate) fn totp(secret: &str) -> totp_rs::TOTP {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        None,
        String::new(),
    )
}

/// Turns TOTP on for the account of `token`, with a code from the system
/// clock; its secret.
pub(crate) async fn enrol_totp(app: &TestApp, token: &str) -> String {
    let begun = app
        .graphql(
            "mutation { beginTotpEnrolment { secret } }",
            json!({}),
            Some(token),
        )
        .await;
    let secret = begun.data("beginTotpEnrolment")["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = totp(&secret).generate(Utc::now().timestamp() as u64);
    let confirmed = app
        .graphql(
            "mutation($c: String!) { confirmTotpEnrolment(input: {code: $c}) { recoveryCodes } }",
            json!({ "c": code }),
            Some(token),
        )
        .await;
    confirmed.data("confirmTotpEnrolment");
    secret
}

/// Makes an account at `email` with `key`'s passkey, named "Phone".
async fn sign_up(app: &TestApp, email: &str, key: &mut Authenticator) -> Value {
    let (ceremony, options) = begin(
        app,
        "mutation($e: String!) { beginPasskeySignUp(email: $e) { ceremony options } }",
        json!({ "e": email }),
        None,
    )
    .await;
    let made = key.create(&options);
    let signed_up = app
        .graphql(
            "mutation($c: String!, $r: JSON!) {
               signUpWithPasskey(input: {ceremony: $c, credential: $r, name: \"Phone\"}) {
                 token user { id email emailVerified } session { methods assuranceLevel } } }",
            json!({ "c": ceremony, "r": made }),
            None,
        )
        .await;
    signed_up.data("signUpWithPasskey").clone()
}

#[tokio::test]
async fn an_account_made_with_a_passkey_has_no_password_and_keeps_a_way_in() {
    let app = app().await;
    let email = format!("passkey-{}@example.com", uuid::Uuid::new_v4());
    let mut key = Authenticator::new();
    let signed_up = sign_up(&app, &email, &mut key).await;
    assert_eq!(signed_up["session"]["methods"], json!(["PASSKEY"]));
    assert_eq!(signed_up["session"]["assuranceLevel"], "AAL2");
    let token = signed_up["token"].as_str().unwrap();
    let user = signed_up["user"]["id"].as_str().unwrap();
    let me = app
        .graphql(
            "{ me { hasPassword passkeys { name lastUsedAt } } }",
            json!({}),
            Some(token),
        )
        .await;
    let me = me.data("me");
    assert_eq!(me["hasPassword"], false);
    assert!(me["passkeys"][0]["lastUsedAt"].is_string(), "{me}");
    let events = app.graphql(EVENTS, json!({}), Some(token)).await;
    let kinds = event_kinds(events.data("me"));
    assert!(
        kinds.contains(&("PASSKEY_ADDED".into(), Some("Phone".into()))),
        "{kinds:?}"
    );

    // No password signs in to it, not even an empty one.
    assert_eq!(
        app.login(&email, PASSWORD).await.code(),
        "INVALID_CREDENTIALS"
    );
    assert_eq!(app.login(&email, "").await.code(), "INVALID_CREDENTIALS");
    // Its last way in cannot be removed.
    let listed = app.graphql(PASSKEYS, json!({}), Some(token)).await;
    let only = listed.data("me")["passkeys"][0]["id"].clone();
    let refused = app
        .graphql(
            "mutation($id: ID!) { deletePasskey(id: $id) }",
            json!({ "id": only }),
            Some(token),
        )
        .await;
    assert_eq!(refused.code(), "LAST_SIGN_IN_METHOD");
    // With a second passkey, the first can go.
    let mut spare = Authenticator::new();
    add_passkey(&app, token, &mut spare, "Spare").await;
    let deleted = app
        .graphql(
            "mutation($id: ID!) { deletePasskey(id: $id) }",
            json!({ "id": only }),
            Some(token),
        )
        .await;
    assert_eq!(deleted.data("deletePasskey"), true);
    sign_in(&app, &mut spare, user)
        .await
        .data("signInWithPasskey");
    // The address is taken now.
    let taken = app
        .graphql(
            "mutation($e: String!) { beginPasskeySignUp(email: $e) { ceremony } }",
            json!({ "e": email }),
            None,
        )
        .await;
    assert_eq!(taken.code(), "EMAIL_TAKEN");
}

#[tokio::test]
async fn failed_assertions_are_counted_per_account() {
    let app = app().await;
    let (_, token, _) = app.signed_in_user().await;
    let user = user_id(&app, &token).await;
    let mut key = Authenticator::new();
    add_passkey(&app, &token, &mut key, "Phone").await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        let (ceremony, options) = begin(&app, BEGIN_SIGN_IN, json!({}), None).await;
        let mut answer = key.get(&options, Some(&user));
        // A forged signature.
        answer["response"]["signature"] = json!(URL_SAFE_NO_PAD.encode([7u8; 70]));
        let reply = app
            .graphql(SIGN_IN, json!({ "c": ceremony, "r": answer }), None)
            .await;
        codes.push(reply.code().to_owned());
    }
    assert_eq!(&codes[..5], ["INVALID_PASSKEY"; 5], "{codes:?}");
    assert_eq!(codes[5], "RATE_LIMITED", "{codes:?}");
}

/// Pre-account takeover (Sudhodanan & Paverd, 2022): a stranger signs the
/// victim's address up with his own passkey first. The victim's password
/// reset proves the inbox and takes the stranger's passkey away.
#[tokio::test]
async fn a_password_reset_takes_back_every_passkey() {
    let app = app().await;
    let victim = format!("victim-{}@example.com", uuid::Uuid::new_v4());
    let mut attacker = Authenticator::new();
    let signed_up = sign_up(&app, &victim, &mut attacker).await;
    let user = signed_up["user"]["id"].as_str().unwrap().to_owned();

    let asked = app
        .graphql(
            "mutation($e: String!) { requestPasswordReset(input: {email: $e}) }",
            json!({ "e": victim }),
            None,
        )
        .await;
    assert_eq!(asked.data("requestPasswordReset"), true);
    let reset_mail = crate::mailbox::Inbox::wait_for(&*app.mail, 2).await;
    let link = reset_mail
        .iter()
        .find(|m| m.to == victim && m.subject.contains("Reset"))
        .expect("the reset link")
        .token("ghr_");
    let reset = app
        .graphql(
            "mutation($t: String!, $p: String!) {
               resetPassword(input: {token: $t, newPassword: $p}) { email } }",
            json!({ "t": link, "p": PASSWORD }),
            None,
        )
        .await;
    reset.data("resetPassword");

    let refused = sign_in(&app, &mut attacker, &user).await;
    assert_eq!(refused.code(), "INVALID_PASSKEY");
    let token = app.login(&victim, PASSWORD).await.data("login")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = app.graphql(PASSKEYS, json!({}), Some(&token)).await;
    assert_eq!(listed.data("me")["passkeys"], json!([]));
    let events = app.graphql(EVENTS, json!({}), Some(&token)).await;
    let kinds = event_kinds(events.data("me"));
    assert!(
        kinds.contains(&("PASSKEY_REMOVED".into(), Some("Phone".into()))),
        "{kinds:?}"
    );
}

/// A password and a remembered browser prove no code: they cannot add a
/// passkey, which would then prove one anywhere.
#[tokio::test]
async fn a_remembered_browser_cannot_add_a_passkey_to_an_account_with_a_factor() {
    let app = app().await;
    let (email, token, _) = app.signed_in_user().await;
    let secret = enrol_totp(&app, &token).await;
    let login = app.login(&email, PASSWORD).await;
    let challenge = login.body["errors"][0]["extensions"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let completed = app
        .graphql(
            "mutation($ch: String!, $t: String!) {
               completeSignIn(input: {challenge: $ch, totpCode: $t, rememberDevice: true}) {
                 knownDevice } }",
            json!({ "ch": challenge, "t": totp(&secret).generate(Utc::now().timestamp() as u64 + 30) }),
            None,
        )
        .await;
    let device = completed.data("completeSignIn")["knownDevice"]
        .as_str()
        .unwrap()
        .to_owned();
    let remembered = app
        .graphql(
            "mutation($e: String!, $p: String!, $d: String) {
               login(input: {email: $e, password: $p, knownDevice: $d}) {
                 token session { methods } } }",
            json!({ "e": email, "p": PASSWORD, "d": device }),
            None,
        )
        .await;
    let remembered = remembered.data("login");
    assert_eq!(
        remembered["session"]["methods"],
        json!(["PASSWORD", "REMEMBERED_DEVICE"])
    );
    let thief = remembered["token"].as_str().unwrap();
    let refused = app
        .graphql(BEGIN_REGISTRATION, json!({}), Some(thief))
        .await;
    assert_eq!(refused.code(), "AAL2_REQUIRED");
}

#[tokio::test]
async fn signing_in_with_a_passkey_day_after_day_never_locks_the_account() {
    let app = app().await;
    let (_, token, _) = app.signed_in_user().await;
    let user = user_id(&app, &token).await;
    let mut key = Authenticator::new();
    add_passkey(&app, &token, &mut key, "Phone").await;
    for _ in 0..8 {
        sign_in(&app, &mut key, &user)
            .await
            .data("signInWithPasskey");
    }
}

#[tokio::test]
async fn passkey_sign_ins_begun_are_limited_per_address() {
    let app = spawn_app_on(TestDatabase::create().await, |s| {
        localhost(s);
        s.login_limits.passkey_ceremonies_per_ip = 3;
    })
    .await;
    for _ in 0..3 {
        app.graphql(BEGIN_SIGN_IN, json!({}), None)
            .await
            .data("beginPasskeySignIn");
    }
    let refused = app.graphql(BEGIN_SIGN_IN, json!({}), None).await;
    assert_eq!(refused.code(), "RATE_LIMITED");
}

#[tokio::test]
async fn a_credential_id_longer_than_webauthn_allows_is_refused() {
    let app = app().await;
    let (_, token, _) = app.signed_in_user().await;
    let user = user_id(&app, &token).await;
    let mut key = Authenticator::new();
    add_passkey(&app, &token, &mut key, "Phone").await;
    let (ceremony, options) = begin(&app, BEGIN_SIGN_IN, json!({}), None).await;
    let mut answer = key.get(&options, Some(&user));
    let long = URL_SAFE_NO_PAD.encode([1u8; 2000]);
    answer["id"] = json!(long);
    answer["rawId"] = json!(long);
    let reply = app
        .graphql(SIGN_IN, json!({ "c": ceremony, "r": answer }), None)
        .await;
    assert_eq!(reply.code(), "INVALID_PASSKEY");
}
