//! Writes vipsec's man pages and shell completions into a directory, generated from the
//! same clap definition as `--help` (which itself comes from the parameter table).
//! Usage: vipsec-docs OUTDIR

use std::path::PathBuf;

use clap_complete::Shell;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .expect("usage: vipsec-docs OUTDIR"),
    );
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let cmd = vipsec::cli::command();
    // Section 8: system administration commands (the binary lives in /usr/sbin).
    render(&cmd, "vipsec", &man)?;
    for sub in cmd.get_subcommands() {
        let name = format!("vipsec-{}", sub.get_name());
        render(&sub.clone().name(name.clone()), &name, &man)?;
        for subsub in sub.get_subcommands() {
            let name = format!("vipsec-{}-{}", sub.get_name(), subsub.get_name());
            render(&subsub.clone().name(name.clone()), &name, &man)?;
        }
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "vipsec", &completions)?;
    }
    Ok(())
}

fn render(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> std::io::Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.8")), buf)
}
