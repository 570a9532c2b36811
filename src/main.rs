use clap::Parser;
use gatehouse::config::{Cli, Command};
use std::process::ExitCode;

use gatehouse::{cli, database, graphql, http, startup, telemetry};

/// glibc's malloc took a fifth of the CPU of a guarded request, mostly
/// handing memory between threads; mimalloc keeps it per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    telemetry::init(default_level, cli.log_format);
    match cli.command {
        Command::Serve(settings) => {
            let app = startup::Application::build(*settings).await?;
            app.run_until_stopped(startup::shutdown_signal()).await?;
        }
        Command::Migrate(database) => {
            database::connect_and_migrate(&database).await?;
        }
        Command::Schema => print!("{}", graphql::schema::sdl()),
        Command::User(args) => return cli::user(*args).await,
        Command::Session(args) => return cli::session(*args).await,
        Command::Healthcheck(args) => {
            if let Err(reason) = http::health::probe_ready(args.listen, args.timeout) {
                eprintln!("unhealthy: {reason}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
