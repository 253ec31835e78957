//! `kvdb completions` and `kvdb man`: what packagers install. The bash script is loaded by a
//! real bash, which must register it and complete subcommands from it; the pages are roff
//! with every subcommand in them.

use std::process::{Command, Output};

fn kvdb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvdb"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the kvdb binary")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

#[test]
fn bash_loads_the_completion_script_and_completes_subcommands_from_it() {
    let script = stdout(&kvdb(&["completions", "bash"]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kvdb.bash");
    std::fs::write(&path, script).unwrap();
    // What bash runs on `kvdb adm<TAB>` and `kvdb admin tr<TAB>`, by hand.
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source {path}; complete -p kvdb >/dev/null || exit 3; \
             COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT={point}; \
             _kvdb kvdb '{current}' '{previous}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path = path.display(),
            words = words.join(" "),
            cword = words.len() - 1,
            point = line.len(),
            current = words[words.len() - 1],
            previous = words[words.len() - 2],
        );
        let out = Command::new("bash")
            .args(["-c", &program])
            .output()
            .unwrap();
        stdout(&out)
    };
    let top = complete("kvdb adm");
    assert_eq!(top.trim(), "admin", "{top}");
    let admin = complete("kvdb admin tr");
    assert!(admin.lines().any(|l| l == "transfer-leader"), "{admin}");
}

#[test]
fn zsh_and_fish_scripts_name_every_subcommand() {
    for shell in ["zsh", "fish"] {
        let script = stdout(&kvdb(&["completions", shell]));
        for sub in ["dev", "admin", "transfer-leader", "bench", "completions"] {
            assert!(script.contains(sub), "{shell} script lacks {sub}");
        }
    }
    let unknown = kvdb(&["completions", "tcsh"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("invalid value 'tcsh'"));
}

#[test]
fn man_prints_a_page_and_writes_one_per_subcommand() {
    let page = stdout(&kvdb(&["man"]));
    assert!(page.contains(".TH kvdb 1"), "{page}");
    assert!(page.contains("admin"));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    stdout(&kvdb(&["man", "--dir", out.to_str().unwrap()]));
    for page in [
        "kvdb.1",
        "kvdb-admin.1",
        "kvdb-admin-transfer-leader.1",
        "kvdb-dev.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not roff");
    }
}

/// The original's load-tool targets name the missing tool and how to install it, and fail.
#[test]
fn a_load_tool_target_without_its_tool_says_how_to_install_it() {
    for (target, tool) in [
        ("ghz-gateway", "ghz"),
        ("k6-gateway", "k6"),
        ("k6-admin", "k6"),
        ("vegeta-admin", "vegeta"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        // A PATH with bash and coreutils but none of the load tools.
        for needed in ["bash", "dirname", "head", "tr", "base64"] {
            let path = Command::new("bash")
                .args(["-c", &format!("command -v {needed}")])
                .output()
                .unwrap();
            let path = String::from_utf8(path.stdout).unwrap();
            std::os::unix::fs::symlink(path.trim(), dir.path().join(needed)).unwrap();
        }
        let out = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/load-tools.sh"
            ))
            .arg(target)
            .env("PATH", dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{target}: {stderr}");
        assert!(
            stderr.contains(&format!("{tool} is not installed"))
                && stderr.contains("install it with"),
            "{target}: {stderr}"
        );
    }
}
