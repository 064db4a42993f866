//! `mcp-loadgen`: the command line is [`mcp_loadgen::cli`].

fn main() -> std::process::ExitCode {
    mcp_loadgen::cli::main()
}
