//! Signing in with another provider, against a real, certified OpenID
//! provider (panva's `oidc-provider`): the whole flow, a second factor
//! after it, ID tokens that fail each check, `state` replayed, foreign and
//! expired, key rotation, the provider down, each linking rule of the
//! pre-account-takeover paper, and a flow finished on another node.

use chrono::{TimeDelta, Utc};
use serde_json::json;

use gatehouse::clock::Clock;
use gatehouse::config::SecretKeyText;

use crate::helpers::{PASSWORD, Reply, TestApp, TestDatabase, spawn_app_on, spawn_app_with_clock};
use crate::mailbox::Inbox;
use crate::oidc::{Provider, REDIRECT, Redirect};
use crate::passkeys::{enrol_totp, totp};

const BEGIN: &str = "mutation($p: String!, $r: String!) {
    beginProviderSignIn(input: {provider: $p, redirectUri: $r}) { authorizationUrl flow expiresAt } }";
const SIGN_IN: &str = "mutation($f: String!, $c: String!, $s: String!, $i: String) {
    signInWithProvider(input: {flow: $f, code: $c, state: $s, iss: $i}) {
      token user { id email emailVerified } session { methods assuranceLevel } } }";
const BEGIN_LINK: &str = "mutation($p: String!, $r: String!) {
    beginProviderLink(input: {provider: $p, redirectUri: $r}) { authorizationUrl flow } }";
const LINK: &str = "mutation($f: String!, $c: String!, $s: String!) {
    linkProvider(input: {flow: $f, code: $c, state: $s}) { id provider email lastUsedAt } }";
const UNLINK: &str = "mutation($id: ID!) { unlinkProvider(id: $id) }";
const IDENTITIES: &str =
    "{ me { user { id email emailVerified } externalIdentities { id provider email } } }";
const EVENTS: &str = "{ me { securityEvents(first: 20) { edges { node { kind provider } } } } }";

/// A browser's flow: what it keeps, and where it was sent.
struct Flow {
    flow: String,
    url: String,
}

async fn begin(app: &TestApp, token: Option<&str>) -> Flow {
    let (query, field) = match token {
        None => (BEGIN, "beginProviderSignIn"),
        Some(_) => (BEGIN_LINK, "beginProviderLink"),
    };
    let reply = app
        .graphql(query, json!({ "p": "test", "r": REDIRECT }), token)
        .await;
    let begun = reply.data(field);
    Flow {
        flow: begun["flow"].as_str().unwrap().to_owned(),
        url: begun["authorizationUrl"].as_str().unwrap().to_owned(),
    }
}

async fn finish(app: &TestApp, flow: &str, back: &Redirect) -> Reply {
    let vars = json!({ "f": flow, "c": back.code, "s": back.state, "i": back.iss });
    app.graphql(SIGN_IN, vars, None).await
}

/// Begins on `app`, signs `sub` in at the provider, finishes on `app`.
async fn sign_in(app: &TestApp, idp: &Provider, sub: &str) -> Reply {
    let flow = begin(app, None).await;
    let back = idp.log_in(&flow.url, sub).await;
    finish(app, &flow.flow, &back).await
}

fn token_of(reply: &Reply) -> String {
    reply.data("signInWithProvider")["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn start(test: &str, trusted: bool) -> Option<(Provider, TestApp)> {
    let idp = Provider::start(test)?;
    let app = spawn_app_on(TestDatabase::create().await, idp.configure(trusted)).await;
    Some((idp, app))
}

async fn user_count(app: &TestApp) -> u64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    entity::user::Entity::find().count(&app.db).await.unwrap()
}

async fn events(app: &TestApp, token: &str) -> Vec<(String, Option<String>)> {
    let reply = app.graphql(EVENTS, json!({}), Some(token)).await;
    reply.data("me")["securityEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let node = &e["node"];
            let provider = node["provider"].as_str().map(str::to_owned);
            (node["kind"].as_str().unwrap().to_owned(), provider)
        })
        .collect()
}

#[tokio::test]
async fn a_first_sign_in_makes_an_account_and_the_subject_comes_back_to_it_on_any_node() {
    let Some(idp) = Provider::start("a_first_sign_in_makes_an_account") else {
        return;
    };
    let database = TestDatabase::create().await;
    let one = spawn_app_on(database.clone(), idp.configure(false)).await;
    let two = spawn_app_on(database, idp.configure(false)).await;
    idp.account("alice-sub", Some("alice@example.com"), true)
        .await;

    // Begun on one node, finished on the other.
    let flow = begin(&one, None).await;
    assert!(flow.flow.starts_with("ghp_"), "{}", flow.flow);
    assert!(
        flow.url.contains("code_challenge_method=S256"),
        "{}",
        flow.url
    );
    assert!(
        !flow.url.contains(&flow.flow),
        "the flow secret never leaves the browser"
    );
    let back = idp.log_in(&flow.url, "alice-sub").await;
    let first = finish(&two, &flow.flow, &back).await;
    let signed_in = first.data("signInWithProvider");
    assert_eq!(signed_in["user"]["email"], "alice@example.com");
    assert_eq!(signed_in["user"]["emailVerified"], true);
    assert_eq!(signed_in["session"]["methods"], json!(["PROVIDER"]));
    assert_eq!(signed_in["session"]["assuranceLevel"], "AAL1");
    let user_id = signed_in["user"]["id"].clone();
    let token = token_of(&first);
    let me = one.graphql(IDENTITIES, json!({}), Some(&token)).await;
    let identities = me.data("me")["externalIdentities"].clone();
    assert_eq!(identities.as_array().unwrap().len(), 1, "{identities}");
    assert_eq!(identities[0]["provider"], "test");
    let kinds = events(&one, &token).await;
    assert!(
        kinds.contains(&("PROVIDER_LINKED".into(), Some("test".into()))),
        "{kinds:?}"
    );

    // The provider's address changes: the subject is the identity.
    idp.account("alice-sub", Some("alice@new.example"), true)
        .await;
    let again = sign_in(&two, &idp, "alice-sub").await;
    let again = again.data("signInWithProvider");
    assert_eq!(again["user"]["id"], user_id);
    assert_eq!(again["user"]["email"], "alice@example.com");
    let token = again["token"].as_str().unwrap();
    let me = one.graphql(IDENTITIES, json!({}), Some(token)).await;
    assert_eq!(
        me.data("me")["externalIdentities"][0]["email"],
        "alice@new.example"
    );
    assert_eq!(user_count(&one).await, 1);
}

#[tokio::test]
async fn an_address_the_provider_did_not_prove_makes_an_unproven_account() {
    let Some((idp, app)) = start("an_address_the_provider_did_not_prove", true).await else {
        return;
    };
    idp.account("bob-sub", Some("bob@example.com"), false).await;
    let reply = sign_in(&app, &idp, "bob-sub").await;
    assert_eq!(
        reply.data("signInWithProvider")["user"]["emailVerified"],
        false
    );
    // It is sent no verification link: a stranger could have claimed the
    // address at the provider, and its owner would adopt his account.
    use sea_orm::{EntityTrait, PaginatorTrait};
    assert_eq!(
        entity::outbox::Entity::find().count(&app.db).await.unwrap(),
        0
    );

    idp.account("nomail-sub", None, false).await;
    let reply = sign_in(&app, &idp, "nomail-sub").await;
    assert_eq!(reply.code(), "PROVIDER_EMAIL_MISSING");
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn a_second_factor_still_follows_a_provider_sign_in() {
    let Some((idp, app)) = start("a_second_factor_still_follows", false).await else {
        return;
    };
    idp.account("carol-sub", Some("carol@example.com"), true)
        .await;
    let token = token_of(&sign_in(&app, &idp, "carol-sub").await);
    let secret = enrol_totp(&app, &token).await;

    let refused = sign_in(&app, &idp, "carol-sub").await;
    assert_eq!(refused.code(), "SECOND_FACTOR_REQUIRED", "{}", refused.body);
    let extensions = &refused.body["errors"][0]["extensions"];
    assert_eq!(extensions["methods"], json!(["TOTP", "RECOVERY_CODE"]));
    let code = totp(&secret).generate(Utc::now().timestamp() as u64 + 30);
    let completed = app
        .graphql(
            "mutation($ch: String!, $t: String!) {
               completeSignIn(input: {challenge: $ch, totpCode: $t}) {
                 session { methods assuranceLevel } } }",
            json!({ "ch": extensions["challenge"], "t": code }),
            None,
        )
        .await;
    let session = &completed.data("completeSignIn")["session"];
    assert_eq!(session["methods"], json!(["TOTP", "PROVIDER"]));
    assert_eq!(session["assuranceLevel"], "AAL2");
}

#[tokio::test]
async fn id_tokens_that_fail_a_check_sign_no_one_in() {
    let Some((idp, app)) = start("id_tokens_that_fail_a_check", true).await else {
        return;
    };
    idp.account("dave-sub", Some("dave@example.com"), true)
        .await;
    for fault in [
        "tamper-signature",
        "wrong-issuer",
        "wrong-audience",
        "wrong-nonce",
        "no-nonce",
        "expired",
    ] {
        idp.fault(Some(fault)).await;
        let reply = sign_in(&app, &idp, "dave-sub").await;
        assert_eq!(
            reply.code(),
            "INVALID_PROVIDER_RESPONSE",
            "{fault}: {}",
            reply.body
        );
    }
    assert_eq!(user_count(&app).await, 0);
    idp.fault(None).await;
    sign_in(&app, &idp, "dave-sub")
        .await
        .data("signInWithProvider");
}

#[tokio::test]
async fn state_is_single_use_bound_to_the_browser_that_began_it_and_expires() {
    let Some(idp) = Provider::start("state_is_single_use") else {
        return;
    };
    let clock = Clock::manual(Utc::now());
    let app = spawn_app_with_clock(
        TestDatabase::create().await,
        clock.clone(),
        idp.configure(false),
    )
    .await;
    idp.account("victim-sub", Some("victim@example.com"), true)
        .await;
    idp.account("attacker-sub", Some("attacker@example.com"), true)
        .await;

    // Login CSRF: the attacker's own code and state, completed in the
    // victim's browser (which holds its own flow, or none).
    let attackers = begin(&app, None).await;
    let attackers_back = idp.log_in(&attackers.url, "attacker-sub").await;
    let victims = begin(&app, None).await;
    let csrf = finish(&app, &victims.flow, &attackers_back).await;
    assert_eq!(csrf.code(), "INVALID_PROVIDER_FLOW");
    let made_up = "ghp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        finish(&app, made_up, &attackers_back).await.code(),
        "INVALID_PROVIDER_FLOW"
    );
    // A foreign state with the right flow fails too, and spends nothing.
    let victims_back = idp.log_in(&victims.url, "victim-sub").await;
    let swapped = Redirect {
        code: victims_back.code.clone(),
        state: attackers_back.state.clone(),
        iss: victims_back.iss.clone(),
    };
    assert_eq!(
        finish(&app, &victims.flow, &swapped).await.code(),
        "INVALID_PROVIDER_FLOW"
    );
    assert_eq!(victims_back.iss.as_deref(), Some(idp.issuer.as_str()));
    finish(&app, &victims.flow, &victims_back)
        .await
        .data("signInWithProvider");
    // A redirect naming another issuer (RFC 9207) is refused.
    let mixed = begin(&app, None).await;
    let mut back = idp.log_in(&mixed.url, "victim-sub").await;
    back.iss = Some("https://other-issuer.example".into());
    let mixed = finish(&app, &mixed.flow, &back).await;
    assert_eq!(mixed.code(), "INVALID_PROVIDER_RESPONSE");
    // Replayed: the flow is spent.
    let replay = finish(&app, &victims.flow, &victims_back).await;
    assert_eq!(replay.code(), "INVALID_PROVIDER_FLOW");

    // Expired: 10 minutes.
    let late = begin(&app, None).await;
    let back = idp.log_in(&late.url, "victim-sub").await;
    clock.set(clock.now() + TimeDelta::minutes(10) + TimeDelta::seconds(1));
    assert_eq!(
        finish(&app, &late.flow, &back).await.code(),
        "INVALID_PROVIDER_FLOW"
    );
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn keys_the_provider_rotates_are_fetched_again_once() {
    let Some((idp, app)) = start("keys_the_provider_rotates", false).await else {
        return;
    };
    idp.account("erin-sub", Some("erin@example.com"), true)
        .await;
    sign_in(&app, &idp, "erin-sub")
        .await
        .data("signInWithProvider");
    sign_in(&app, &idp, "erin-sub")
        .await
        .data("signInWithProvider");
    assert_eq!(idp.key_fetches().await, 1, "the keys are cached");
    idp.rotate_keys().await;
    sign_in(&app, &idp, "erin-sub")
        .await
        .data("signInWithProvider");
    assert_eq!(idp.key_fetches().await, 2);
    sign_in(&app, &idp, "erin-sub")
        .await
        .data("signInWithProvider");
    assert_eq!(idp.key_fetches().await, 2);
}

#[tokio::test]
async fn a_provider_that_is_down_gives_a_coded_error_and_blocks_nothing() {
    let Some(idp) = Provider::start("a_provider_that_is_down") else {
        return;
    };
    idp.set_up(false).await;
    // The node starts with its provider down.
    let app = spawn_app_on(TestDatabase::create().await, idp.configure(false)).await;
    let started = std::time::Instant::now();
    let reply = app
        .graphql(BEGIN, json!({ "p": "test", "r": REDIRECT }), None)
        .await;
    assert_eq!(reply.code(), "PROVIDER_UNAVAILABLE", "{}", reply.body);
    assert!(started.elapsed() < std::time::Duration::from_secs(6));
    app.signed_in_user().await;

    idp.set_up(true).await;
    // A failure is remembered for 5 s, then the provider is asked again.
    tokio::time::sleep(std::time::Duration::from_millis(5_200)).await;
    idp.account("fay-sub", Some("fay@example.com"), true).await;
    let flow = begin(&app, None).await;
    let back = idp.log_in(&flow.url, "fay-sub").await;
    idp.set_up(false).await;
    assert_eq!(
        finish(&app, &flow.flow, &back).await.code(),
        "PROVIDER_UNAVAILABLE"
    );

    // One that never answers at all: a closed port.
    let closed = Provider::start("a_provider_that_is_down").unwrap();
    let issuer = closed.issuer.clone();
    drop(closed);
    let nowhere = spawn_app_on(TestDatabase::create().await, move |s| {
        let providers =
            json!([{ "id": "test", "issuer": issuer, "client_id": "c", "client_secret": "s" }]);
        s.other_ways_in.oidc_providers = Some(SecretKeyText(providers.to_string()));
        s.other_ways_in.oidc_redirect_uris = vec![REDIRECT.to_owned()];
    })
    .await;
    let reply = nowhere
        .graphql(BEGIN, json!({ "p": "test", "r": REDIRECT }), None)
        .await;
    assert_eq!(reply.code(), "PROVIDER_UNAVAILABLE");
    let other = json!({ "p": "other", "r": REDIRECT });
    assert_eq!(
        nowhere.graphql(BEGIN, other, None).await.code(),
        "UNKNOWN_PROVIDER"
    );
    let elsewhere = json!({ "p": "test", "r": "https://evil.example/callback" });
    assert_eq!(
        nowhere.graphql(BEGIN, elsewhere, None).await.code(),
        "REDIRECT_URI_NOT_ALLOWED"
    );
}

#[tokio::test]
async fn a_verified_address_joins_a_verified_account_only_at_a_trusted_provider() {
    let Some(idp) = Provider::start("a_verified_address_joins") else {
        return;
    };
    let database = TestDatabase::create().await;
    let untrusted = spawn_app_on(database.clone(), idp.configure(false)).await;
    let trusted = spawn_app_on(database, idp.configure(true)).await;
    let token = trusted.verified_user("gina@example.com").await;
    idp.account("gina-unverified", Some("gina@example.com"), false)
        .await;
    idp.account("gina-sub", Some("gina@example.com"), true)
        .await;

    // Not trusted, or the provider did not prove the address: refused.
    let refused = sign_in(&untrusted, &idp, "gina-sub").await;
    assert_eq!(refused.code(), "LINK_REQUIRED");
    let refused = sign_in(&trusted, &idp, "gina-unverified").await;
    assert_eq!(refused.code(), "LINK_REQUIRED");
    // Both proved it, and the provider is trusted: it joins.
    let joined = sign_in(&trusted, &idp, "gina-sub").await;
    let me = trusted.graphql(IDENTITIES, json!({}), Some(&token)).await;
    assert_eq!(
        joined.data("signInWithProvider")["user"]["id"],
        me.data("me")["user"]["id"]
    );
    let notice = trusted.mail.nth_to("gina@example.com", 2).await;
    assert!(
        notice.subject.contains("provider was linked"),
        "{}",
        notice.subject
    );
    assert_eq!(user_count(&trusted).await, 1);
}

#[tokio::test]
async fn an_address_signed_up_first_by_a_stranger_is_never_joined_and_the_owner_gets_it_back() {
    let Some((idp, app)) = start("an_address_signed_up_first", true).await else {
        return;
    };
    // The attacker signs the victim's address up with a password, and
    // never proves it.
    let attacker = app.register("hana@example.com", PASSWORD).await;
    let attackers_token = attacker.data("register")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    idp.account("hana-sub", Some("hana@example.com"), true)
        .await;
    let refused = sign_in(&app, &idp, "hana-sub").await;
    assert_eq!(refused.code(), "LINK_REQUIRED");

    // The owner resets the password through the inbox, signs in, and
    // links from that fresh session; the stranger is out for good.
    app.graphql(
        "mutation($e: String!) { requestPasswordReset(input: {email: $e}) }",
        json!({ "e": "hana@example.com" }),
        None,
    )
    .await
    .data("requestPasswordReset");
    let reset = app.mail.nth_to("hana@example.com", 2).await.token("ghr_");
    let new_password = "an owner's new passphrase 2026";
    app.graphql(
        "mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { email } }",
        json!({ "t": reset, "p": new_password }),
        None,
    )
    .await
    .data("resetPassword");
    app.me(&attackers_token)
        .await
        .assert_unauthenticated("PASSWORD_RESET");
    assert_eq!(
        app.login("hana@example.com", PASSWORD).await.code(),
        "INVALID_CREDENTIALS"
    );
    let owner = app.login("hana@example.com", new_password).await;
    let owner = owner.data("login")["token"].as_str().unwrap().to_owned();
    let flow = begin(&app, Some(&owner)).await;
    let back = idp.log_in(&flow.url, "hana-sub").await;
    let vars = json!({ "f": flow.flow, "c": back.code, "s": back.state });
    let linked = app.graphql(LINK, vars, Some(&owner)).await;
    assert_eq!(linked.data("linkProvider")["provider"], "test");
    sign_in(&app, &idp, "hana-sub")
        .await
        .data("signInWithProvider");
}

#[tokio::test]
async fn a_strangers_provider_link_is_taken_back_by_the_owners_reset() {
    let Some((idp, app)) = start("a_strangers_provider_link", true).await else {
        return;
    };
    // The stranger's provider claims the victim's address without proving it.
    idp.account("stranger-sub", Some("ivy@example.com"), false)
        .await;
    let stranger = token_of(&sign_in(&app, &idp, "stranger-sub").await);
    assert_eq!(
        app.register("ivy@example.com", PASSWORD).await.code(),
        "EMAIL_TAKEN"
    );
    app.graphql(
        "mutation($e: String!) { requestPasswordReset(input: {email: $e}) }",
        json!({ "e": "ivy@example.com" }),
        None,
    )
    .await
    .data("requestPasswordReset");
    let reset = app.mail.nth_to("ivy@example.com", 1).await.token("ghr_");
    app.graphql(
        "mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { email } }",
        json!({ "t": reset, "p": "ivy's own passphrase 2026" }),
        None,
    )
    .await
    .data("resetPassword");
    app.me(&stranger)
        .await
        .assert_unauthenticated("PASSWORD_RESET");
    // The link is gone, and the provider's unproven address joins nothing.
    let again = sign_in(&app, &idp, "stranger-sub").await;
    assert_eq!(again.code(), "LINK_REQUIRED");
}

#[tokio::test]
async fn a_provider_is_linked_from_a_fresh_session_and_unlinked_unless_it_is_the_last_way_in() {
    let Some((idp, app)) = start("a_provider_is_linked", false).await else {
        return;
    };
    idp.account("jo-sub", Some("jo-elsewhere@example.com"), false)
        .await;
    let (_, token, _) = app.signed_in_user().await;
    // Another session cannot finish this session's flow, nor can sign-in.
    let flow = begin(&app, Some(&token)).await;
    let back = idp.log_in(&flow.url, "jo-sub").await;
    let (_, other, _) = app.signed_in_user().await;
    let vars = json!({ "f": flow.flow, "c": back.code, "s": back.state });
    assert_eq!(
        app.graphql(LINK, vars.clone(), Some(&other)).await.code(),
        "INVALID_PROVIDER_FLOW"
    );
    assert_eq!(
        finish(&app, &flow.flow, &back).await.code(),
        "INVALID_PROVIDER_FLOW"
    );
    let linked = app.graphql(LINK, vars, Some(&token)).await;
    let id = linked.data("linkProvider")["id"].clone();
    assert!(
        linked.data("linkProvider")["lastUsedAt"].is_null(),
        "not used yet"
    );
    assert!(
        events(&app, &token)
            .await
            .contains(&("PROVIDER_LINKED".into(), Some("test".into())))
    );

    // The same subject cannot be linked to another account.
    let flow = begin(&app, Some(&other)).await;
    let back = idp.log_in(&flow.url, "jo-sub").await;
    let vars = json!({ "f": flow.flow, "c": back.code, "s": back.state });
    assert_eq!(
        app.graphql(LINK, vars, Some(&other)).await.code(),
        "IDENTITY_ALREADY_LINKED"
    );

    // The account keeps its password: the link can go.
    let unlinked = app.graphql(UNLINK, json!({ "id": id }), Some(&token)).await;
    assert_eq!(unlinked.data("unlinkProvider"), true);
    let again = app.graphql(UNLINK, json!({ "id": id }), Some(&token)).await;
    assert_eq!(again.code(), "NOT_FOUND");

    // An account made by the provider has no other way in.
    idp.account("kim-sub", Some("kim@example.com"), true).await;
    let kim = token_of(&sign_in(&app, &idp, "kim-sub").await);
    let me = app.graphql(IDENTITIES, json!({}), Some(&kim)).await;
    let id = me.data("me")["externalIdentities"][0]["id"].clone();
    let refused = app.graphql(UNLINK, json!({ "id": id }), Some(&kim)).await;
    assert_eq!(refused.code(), "LAST_SIGN_IN_METHOD");
}

#[tokio::test]
async fn claims_too_long_to_store_or_not_addresses_get_a_code_not_a_500() {
    let Some((idp, app)) = start("claims_too_long_to_store", true).await else {
        return;
    };
    let long_sub = "s".repeat(300);
    idp.account(&long_sub, Some("long@example.com"), true).await;
    let reply = sign_in(&app, &idp, &long_sub).await;
    assert_eq!(reply.code(), "INVALID_PROVIDER_RESPONSE", "{}", reply.body);
    let long_email = format!("{}@example.com", "e".repeat(400));
    idp.account("long-mail-sub", Some(&long_email), true).await;
    let reply = sign_in(&app, &idp, "long-mail-sub").await;
    assert_eq!(reply.code(), "PROVIDER_EMAIL_MISSING", "{}", reply.body);
    // A linked subject whose address turns hostile still signs in; the
    // address shown is dropped, never stored raw.
    idp.account("odd-sub", Some("odd@example.com"), true).await;
    sign_in(&app, &idp, "odd-sub")
        .await
        .data("signInWithProvider");
    idp.account("odd-sub", Some("<img src=x onerror=alert(1)>"), true)
        .await;
    let again = token_of(&sign_in(&app, &idp, "odd-sub").await);
    let me = app.graphql(IDENTITIES, json!({}), Some(&again)).await;
    assert!(me.data("me")["externalIdentities"][0]["email"].is_null());
    assert_eq!(user_count(&app).await, 1);
}
