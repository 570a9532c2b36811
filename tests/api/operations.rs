//! The suite's operations, from `tests/api/operations/*.graphql`, checked
//! against `schema.graphql` at compile time: a schema change that breaks a
//! client breaks this build.

#![allow(clippy::upper_case_acronyms)]

use graphql_client::GraphQLQuery;

/// How the schema's custom scalars arrive in JSON.
type DateTime = String;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "tests/api/operations/register.graphql",
    variables_derives = "Debug",
    response_derives = "Debug"
)]
pub struct Register;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "tests/api/operations/login.graphql",
    variables_derives = "Debug",
    response_derives = "Debug"
)]
pub struct Login;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "tests/api/operations/me.graphql",
    variables_derives = "Debug",
    response_derives = "Debug"
)]
pub struct Me;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "tests/api/operations/refresh_session.graphql",
    variables_derives = "Debug",
    response_derives = "Debug"
)]
pub struct RefreshSession;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "tests/api/operations/revoke_session.graphql",
    variables_derives = "Debug",
    response_derives = "Debug"
)]
pub struct RevokeSession;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "tests/api/operations/logout.graphql",
    variables_derives = "Debug",
    response_derives = "Debug"
)]
pub struct Logout;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "tests/api/operations/revoke_other_sessions.graphql",
    variables_derives = "Debug",
    response_derives = "Debug"
)]
pub struct RevokeOtherSessions;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "tests/api/operations/change_password.graphql",
    variables_derives = "Debug",
    response_derives = "Debug"
)]
pub struct ChangePassword;
