use clap::Parser;
use gatehouse::config::{Cli, Command};
use std::process::ExitCode;

use gatehouse::{cli, graphql, startup, telemetry};

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
            startup::connect_and_migrate(&database).await?;
        }
        Command::Schema => print!("{}", graphql::schema::sdl()),
        Command::User(args) => return cli::user(*args).await,
        Command::Session(args) => return cli::session(*args).await,
    }
    Ok(ExitCode::SUCCESS)
}
