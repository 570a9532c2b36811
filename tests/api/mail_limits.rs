//! Every message to an address counts against that address's hourly
//! budget, whoever asked for it and why; and while the budget is spent the
//! newest link in the owner's inbox keeps working.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use gatehouse::clock::Clock;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, TestDatabase, spawn_app_on, spawn_app_with_clock};
use crate::mailbox::Inbox;

const VICTIM: &str = "victim@example.com";
const NEW_PASSWORD: &str = "a brand new passphrase";

async fn settle(app: &TestApp, expected: usize) {
    app.mail.wait_for(expected).await;
    // Anything more would have been written by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn token_of(reply: &crate::helpers::Reply, field: &str) -> String {
    reply.data(field)["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signing_someone_up_again_and_again_cannot_flood_their_inbox() {
    let app = spawn_app_on(TestDatabase::create().await, |_| {}).await;
    for _ in 0..8 {
        let token = token_of(&app.register(VICTIM, PASSWORD).await, "register");
        let deleted = app
            .graphql(
                "mutation($p: String!) { deleteAccount(input: {password: $p}) }",
                json!({ "p": PASSWORD }),
                Some(&token),
            )
            .await;
        assert_eq!(deleted.data("deleteAccount"), true);
    }
    settle(&app, 5).await;
    assert_eq!(app.mail.to(VICTIM).len(), 5, "the default 5 an hour");
}

#[tokio::test]
async fn change_of_address_notices_count_against_the_current_address() {
    let app = spawn_app_on(TestDatabase::create().await, |_| {}).await;
    // Someone who registered the victim's address can make it receive
    // notices of changes they ask for, but only within its budget: each
    // change counts its notice now and the one sent when it is done.
    let squatter = token_of(&app.register(VICTIM, PASSWORD).await, "register");
    for i in 0..2 {
        let new = format!("elsewhere-{i}@example.com");
        app.change_email(&squatter, &new).await.data("changeEmail");
    }
    let refused = app.change_email(&squatter, "one-more@example.com").await;
    assert_eq!(refused.code(), "RATE_LIMITED");
    settle(&app, 1 + 2 + 2).await;
    assert_eq!(app.mail.to(VICTIM).len(), 3, "1 link + 2 notices");
    // The refused change spent nothing of the new address's budget.
    assert!(app.mail.to("one-more@example.com").is_empty());
}

#[tokio::test]
async fn other_accounts_cannot_spend_an_owners_reset_links() {
    let app = spawn_app_on(TestDatabase::create().await, |_| {}).await;
    let (owner, _, _) = app.signed_in_user().await;
    // Links asking to move other accounts to the owner's address have a
    // budget of their own there (each mover may ask twice an hour: its own
    // address is told of each change twice).
    let mut movers = Vec::new();
    for _ in 0..3 {
        movers.push(app.signed_in_user().await.1);
    }
    for mover in [&movers[0], &movers[0], &movers[1], &movers[1], &movers[2]] {
        app.change_email(mover, &owner).await.data("changeEmail");
    }
    let refused = app.change_email(&movers[2], &owner).await;
    assert_eq!(refused.code(), "RATE_LIMITED");
    // The owner's reset still goes out.
    app.ask_reset(&owner).await.data("requestPasswordReset");
    let mails = app.mail.nth_to(&owner, 7).await;
    assert!(mails.subject.starts_with("Reset"), "{}", mails.subject);
}

#[tokio::test]
async fn while_requests_are_refused_the_newest_reset_link_keeps_working() {
    let clock = Clock::manual(Utc::now());
    let app = spawn_app_with_clock(TestDatabase::create().await, clock.clone(), |_| {}).await;
    let (email, _, _) = app.signed_in_user().await;
    // A stranger spends the address's budget: 1 sign-up link + 4 resets.
    for _ in 0..4 {
        app.ask_reset(&email).await.data("requestPasswordReset");
    }
    let newest = app.mail.nth_to(&email, 5).await.token("ghr_");
    assert_eq!(app.ask_reset(&email).await.code(), "RATE_LIMITED");

    // Past the link's usual 30 minutes, still refused, the link works.
    clock.set(clock.now() + TimeDelta::minutes(50));
    assert_eq!(app.ask_reset(&email).await.code(), "RATE_LIMITED");
    let reset = app.reset(&newest).await;
    reset.data("resetPassword");
    app.login(&email, NEW_PASSWORD).await.data("login");
}

#[tokio::test]
async fn a_link_outlives_its_lifetime_only_while_the_budget_is_spent() {
    let clock = Clock::manual(Utc::now());
    let app = spawn_app_with_clock(TestDatabase::create().await, clock.clone(), |_| {}).await;
    let (email, _, _) = app.signed_in_user().await;
    for _ in 0..4 {
        app.ask_reset(&email).await.data("requestPasswordReset");
    }
    let newest = app.mail.nth_to(&email, 5).await.token("ghr_");
    // The budget comes back an hour after it was spent: the link ends then.
    clock.set(clock.now() + TimeDelta::minutes(61));
    assert_eq!(app.reset(&newest).await.code(), "INVALID_RESET_TOKEN");
    app.ask_reset(&email).await.data("requestPasswordReset");
}

impl TestApp {
    async fn ask_reset(&self, email: &str) -> crate::helpers::Reply {
        self.graphql(
            "mutation($e: String!) { requestPasswordReset(input: {email: $e}) }",
            json!({ "e": email }),
            None,
        )
        .await
    }

    async fn change_email(&self, token: &str, new: &str) -> crate::helpers::Reply {
        self.graphql(
            "mutation($p: String!, $e: String!) { changeEmail(input: {password: $p, newEmail: $e}) }",
            json!({ "p": PASSWORD, "e": new }),
            Some(token),
        )
        .await
    }

    async fn reset(&self, link: &str) -> crate::helpers::Reply {
        self.graphql(
            "mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { email } }",
            json!({ "t": link, "p": NEW_PASSWORD }),
            None,
        )
        .await
    }
}
