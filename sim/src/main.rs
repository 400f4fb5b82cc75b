//! `linkrunner-sim`: serves the Linkrunner API simulator until Ctrl-C or SIGTERM.

fn main() -> anyhow::Result<()> {
    linkrunner_sim::cli::main(std::env::args())
}
