//! What a GraphQL document may cost: the limits `graphql::limits` checks
//! before anything whose cost can grow faster than the document, and the
//! refusal it gives for each.

/// Deepest nesting of application fields (ours is 4 at most).
pub const MAX_DEPTH: usize = 12;
/// Deepest nesting inside `__schema`/`__type`: GraphiQL's introspection
/// query needs 14; introspection of introspection types is recursive.
pub const MAX_INTROSPECTION_DEPTH: usize = 16;
/// Deepest nesting of fields, fragment spreads and inline fragments
/// together (async-graphql's own default; GraphiQL needs 24).
pub const MAX_NESTING: usize = 32;
/// Most selections (fields, spreads and inline fragments, each per use) in
/// one operation or fragment once fragments are expanded. GraphiQL's
/// introspection query has about 160.
pub const MAX_SELECTIONS: usize = 250;
/// Most expanded selections of all the document's definitions together:
/// what validation walks at most.
pub const MAX_DOCUMENT_SELECTIONS: usize = 1000;
/// Most aliased fields in one operation, once fragments are expanded.
pub const MAX_ALIASES: usize = 15;
/// Most root fields in one operation, through fragments too.
pub const MAX_ROOT_FIELDS: usize = 10;
/// Most root fields that check a password in one operation: one request,
/// one guess.
pub const MAX_PASSWORD_CHECKS: usize = 1;
/// Most directives on one field, fragment or operation.
pub const MAX_DIRECTIVES: usize = 8;
/// Most arguments on one field (ours take one).
pub const MAX_ARGUMENTS: usize = 8;
/// Most variables one operation declares.
pub const MAX_VARIABLES: usize = 32;
/// Deepest list or object nesting in one argument or default value.
pub const MAX_VALUE_DEPTH: usize = 16;
/// Deepest nesting of brackets of any kind in the query text, checked
/// before the parser, which recurses (kilobytes of stack) once per level.
pub const MAX_BRACKETS: usize = 64;

/// The mutations that check a password or a code, or redeem a provider's
/// code (a call out): one per request, so no request can try more than
/// one guess or make a node call out many times.
pub const PASSWORD_FIELDS: &[&str] = &[
    "login",
    "register",
    "changePassword",
    "reauthenticate",
    "deleteAccount",
    "resetPassword",
    "changeEmail",
    "completeSignIn",
    "confirmTotpEnrolment",
    "signInWithEmailCode",
    "signInWithProvider",
    "linkProvider",
];

/// Which limit a document broke (checked by `graphql::limits`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryLimit {
    Depth,
    Nesting,
    Complexity,
    Aliases,
    RootFields,
    PasswordChecks,
    Directives,
    Arguments,
    Variables,
    /// A fragment that spreads itself; it would never finish expanding.
    FragmentCycle(String),
}

impl QueryLimit {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Depth | Self::Nesting => "QUERY_TOO_DEEP",
            Self::Complexity | Self::Directives | Self::Arguments | Self::Variables => {
                "QUERY_TOO_COMPLEX"
            }
            Self::Aliases => "TOO_MANY_ALIASES",
            Self::RootFields => "TOO_MANY_ROOT_FIELDS",
            Self::PasswordChecks => "TOO_MANY_PASSWORD_CHECKS",
            Self::FragmentCycle(_) => "GRAPHQL_VALIDATION_FAILED",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Depth => format!(
                "The query is nested more than {MAX_DEPTH} fields deep \
                 ({MAX_INTROSPECTION_DEPTH} inside introspection)"
            ),
            Self::Nesting => format!(
                "The query nests fields, fragments and brackets more than {MAX_NESTING} deep"
            ),
            Self::Complexity => format!(
                "The query selects more than {MAX_SELECTIONS} fields and fragments once \
                 fragments are expanded, or its definitions together more than \
                 {MAX_DOCUMENT_SELECTIONS}"
            ),
            Self::Aliases => format!("The query uses more than {MAX_ALIASES} aliases"),
            Self::RootFields => {
                format!("An operation may select at most {MAX_ROOT_FIELDS} root fields")
            }
            Self::PasswordChecks => format!(
                "An operation may check at most {MAX_PASSWORD_CHECKS} password \
                 or code, or redeem one provider's code (login, register, changePassword, \
                 reauthenticate, deleteAccount, resetPassword, changeEmail, completeSignIn, \
                 confirmTotpEnrolment, signInWithEmailCode, signInWithProvider, \
                 linkProvider); send one per request"
            ),
            Self::Directives => format!("At most {MAX_DIRECTIVES} directives per location"),
            Self::Arguments => format!("At most {MAX_ARGUMENTS} arguments per field"),
            Self::Variables => {
                format!("An operation may declare at most {MAX_VARIABLES} variables")
            }
            Self::FragmentCycle(name) => format!("Fragment \"{name}\" spreads itself"),
        }
    }
}
