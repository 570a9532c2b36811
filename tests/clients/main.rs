//! Runs the Node client tests in this folder against the real binary:
//! Apollo Client 4 and urql 6 with their default settings, the SPA example
//! compiled as it ships (its browser app in headless Chromium, passkeys
//! included), the `graphql-http` audit of GraphQL over HTTP, and field
//! errors' nulls compared with graphql-js.
//! The packages come from `package-lock.json`, installed on first use;
//! the browser app's test also runs the test OpenID provider in tests/oidc.

use std::path::Path;
use std::process::Command;

#[test]
fn real_clients_the_spa_example_and_the_graphql_over_http_audit() {
    if Command::new("npm").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Node.js and npm"
        );
        eprintln!("*** SKIPPED the client tests: Node.js and npm are not installed ***");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("examples/spa-client");
    let clients = root.join("tests/clients");
    install(&example);
    // Codegen from schema.graphql (and the trusted-documents manifest),
    // then the TypeScript build the tests import, and the app's bundle.
    npm(&example, &["run", "check"], &[]);
    install(&clients);
    install(&root.join("tests/oidc"));
    npm(
        &clients,
        &["test"],
        &[("GATEHOUSE_BIN", env!("CARGO_BIN_EXE_gatehouse"))],
    );
}

/// `npm ci`, unless `node_modules` already matches `package-lock.json`.
fn install(dir: &Path) {
    let modified = |path: &Path| path.metadata().and_then(|m| m.modified()).ok();
    let lock = modified(&dir.join("package-lock.json"));
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < lock {
        npm(dir, &["ci", "--no-audit", "--no-fund"], &[]);
    }
}

fn npm(dir: &Path, args: &[&str], envs: &[(&str, &str)]) {
    let output = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().copied())
        .output()
        .expect("npm runs");
    assert!(
        output.status.success(),
        "npm {args:?} in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}
