//! Property tests of the submit-file encoding without HTCondor: adversarial requests are
//! rendered, read back by the simulator's independent submit-language reader, and the argv
//! and environment each proc would receive are compared with the reference plan. A second
//! property runs the decoded command lines under a real bash to prove the launcher delivers
//! them exactly. (`real_parser.rs` repeats the first check with HTCondor's own parser.)

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use farm_core::{Command, JobRequest};
use farm_htcondor::CondorSettings;
use farm_htcondor::render::{self, Mode};
use proptest::prelude::*;
use support::submit_lang;
use support::verify::{DecodedProc, verify};

fn decode(text: &str, cluster: u32) -> Result<Vec<DecodedProc>, String> {
    let procs = submit_lang::build_procs(text, &[], cluster, "/submit", 1_700_000_000)?;
    Ok(procs
        .into_iter()
        .map(|p| DecodedProc {
            ad: p.ad.into_iter().collect(),
            argv: Some(p.argv),
            env: Some(p.env.into_iter().collect::<BTreeMap<_, _>>()),
        })
        .collect())
}

/// Values without `$` or line breaks can always take the direct route.
fn plainly_carried(request: &JobRequest) -> bool {
    let texts = request
        .commands
        .iter()
        .flat_map(Command::program_argv)
        .chain(request.environment.values().cloned())
        .chain(request.working_directory.clone())
        .chain(request.log_directory.clone());
    texts.into_iter().all(|t| !t.contains(['$', '\n', '\r']))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// Whatever the request holds, each proc's argv and environment decode to what the
    /// plan says, and values the submit language can carry always take the direct route.
    #[test]
    fn rendered_submit_files_decode_to_the_plan(request in support::requests::request(), cluster in 1u32..2_000_000_000) {
        prop_assume!(request.validate().is_ok());
        let settings = CondorSettings::default();
        let rendered = match render::render(&request, &settings) {
            Ok(r) => r,
            Err(e) => {
                // Only a log directory the submit language cannot carry is refused.
                prop_assert!(e.to_string().contains("log_directory"), "{e}");
                return Ok(());
            }
        };
        let procs = decode(&rendered.main().contents, cluster).map_err(|e| TestCaseError::fail(format!("{e}\n{}", rendered.main().contents)))?;
        if let Err(problem) = verify(&request, &settings, cluster, &procs) {
            return Err(TestCaseError::fail(format!("{problem}\n{}", rendered.main().contents)));
        }
        let one_step = request.frames.is_none() || request.repeat == farm_core::Repeat::PerChunk || request.chunk_size == 1;
        let mode = render::mode(&request, &settings);
        let bash_managed = render::BASH_STARTUP_VARIABLES.iter().any(|n| request.environment.contains_key(*n));
        if !one_step || bash_managed {
            prop_assert_eq!(mode, Mode::Wrapper);
        } else if plainly_carried(&request) {
            prop_assert_eq!(mode, Mode::Direct);
        }
    }
}

/// A program that writes its argv and environment, NUL-separated, to `$RECORD_OUT`... which
/// the job does not have: the launcher's environment is exactly the ad's, so the recorder
/// takes its output path as its first argument instead.
fn recorder(dir: &Path) -> String {
    let path = dir.join("record");
    std::fs::write(&path, "#!/bin/bash\nout=\"$1\"; shift\n{ printf 'ARGV\\0'; for a in \"$@\"; do printf '%s\\0' \"$a\"; done; printf 'ENV\\0'; env -0; printf 'PWD\\0%s\\0' \"$PWD\"; } > \"$out\"\n").unwrap();
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&path, perm).unwrap();
    path.display().to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Direct mode for real: the decoded `bash` command line, run with the decoded
    /// environment and nothing else, hands the program exactly the planned argv and
    /// environment, in the working directory, and appends its output to the render log.
    #[test]
    fn the_launcher_delivers_argv_and_environment_under_bash(mut request in support::requests::request(), cluster in 1u32..2_000_000_000) {
        let dir = tempfile::tempdir().unwrap();
        let rec = recorder(dir.path());
        let out = dir.path().join("recorded");
        let Command::Argv(argv) = &mut request.commands[0] else { unreachable!() };
        argv[0] = rec.clone();
        argv.insert(1, out.display().to_string());
        request.log_directory = Some(dir.path().join("logs").display().to_string());
        if let Some(wd) = &request.working_directory {
            let real = dir.path().join("wd").join(wd.trim_start_matches('/').replace('/', "_"));
            request.working_directory = Some(real.display().to_string());
        }
        prop_assume!(request.validate().is_ok());
        prop_assume!(render::mode(&request, &CondorSettings::default()) == Mode::Direct);
        if let Some(wd) = &request.working_directory {
            std::fs::create_dir_all(wd).unwrap();
        }
        let settings = CondorSettings::default();
        let layout = render::JobLayout::for_request(&request, &settings.log_directory);
        std::fs::create_dir_all(layout.dir()).unwrap();
        let rendered = render::render(&request, &settings).unwrap();
        let procs = submit_lang::build_procs(&rendered.main().contents, &[], cluster, "/", 0).unwrap();
        for (task, proc) in request.tasks().iter().zip(&procs) {
            let status = std::process::Command::new(&proc.cmd)
                .args(&proc.argv)
                .env_clear()
                .envs(proc.env.iter().map(|(k, v)| (k, v)))
                .current_dir(dir.path())
                .status()
                .unwrap();
            prop_assert!(status.success());
            let raw = std::fs::read(&out).unwrap();
            let text = String::from_utf8(raw).unwrap();
            let mut fields = text.split('\0');
            prop_assert_eq!(fields.next(), Some("ARGV"));
            let got_argv: Vec<&str> = fields.by_ref().take_while(|f| *f != "ENV").collect();
            let mut got_env = BTreeMap::new();
            for f in fields.by_ref() {
                if f == "PWD" { break; }
                if let Some((k, v)) = f.split_once('=') { got_env.insert(k.to_owned(), v.to_owned()); }
            }
            let pwd = fields.next().unwrap_or_default().to_owned();
            let step = &request.steps(task)[0];
            prop_assert_eq!(&got_argv, &step.argv[2..].iter().map(String::as_str).collect::<Vec<_>>());
            for (k, v) in request.environment.iter() {
                prop_assert_eq!(got_env.get(k), Some(v), "{}", k);
            }
            for (k, v) in &step.farm_env {
                prop_assert_eq!(got_env.get(*k), Some(v), "{}", k);
            }
            if let Some(wd) = &request.working_directory {
                prop_assert_eq!(&pwd, wd);
            }
            prop_assert!(Path::new(&layout.render_log(cluster)).exists(), "the render log was not opened");
        }
    }
}

/// Every special variable bash documents either reaches the command unchanged through the
/// direct route, or takes the wrapper route: checked against this machine's bash.
#[test]
fn bash_special_variables_never_reach_the_launcher_when_it_would_change_them() {
    const BASH_VARIABLES: &[&str] = &[
        "BASH",
        "BASHOPTS",
        "BASHPID",
        "BASH_ALIASES",
        "BASH_ARGC",
        "BASH_ARGV",
        "BASH_ARGV0",
        "BASH_CMDS",
        "BASH_COMMAND",
        "BASH_COMPAT",
        "BASH_ENV",
        "BASH_EXECUTION_STRING",
        "BASH_LINENO",
        "BASH_LOADABLES_PATH",
        "BASH_REMATCH",
        "BASH_SOURCE",
        "BASH_SUBSHELL",
        "BASH_VERSINFO",
        "BASH_VERSION",
        "BASH_XTRACEFD",
        "CDPATH",
        "CHILD_MAX",
        "COLUMNS",
        "COMP_CWORD",
        "COMP_KEY",
        "COMP_LINE",
        "COMP_POINT",
        "COMP_TYPE",
        "COMP_WORDBREAKS",
        "COMP_WORDS",
        "COMPREPLY",
        "COPROC",
        "DIRSTACK",
        "EMACS",
        "ENV",
        "EPOCHREALTIME",
        "EPOCHSECONDS",
        "EUID",
        "EXECIGNORE",
        "FCEDIT",
        "FIGNORE",
        "FUNCNAME",
        "FUNCNEST",
        "GLOBIGNORE",
        "GROUPS",
        "histchars",
        "HISTCMD",
        "HISTCONTROL",
        "HISTFILE",
        "HISTFILESIZE",
        "HISTIGNORE",
        "HISTSIZE",
        "HISTTIMEFORMAT",
        "HOME",
        "HOSTFILE",
        "HOSTNAME",
        "HOSTTYPE",
        "IFS",
        "IGNOREEOF",
        "INPUTRC",
        "INSIDE_EMACS",
        "LANG",
        "LC_ALL",
        "LC_COLLATE",
        "LC_CTYPE",
        "LC_MESSAGES",
        "LC_NUMERIC",
        "LC_TIME",
        "LINENO",
        "LINES",
        "MACHTYPE",
        "MAIL",
        "MAILCHECK",
        "MAILPATH",
        "MAPFILE",
        "OLDPWD",
        "OPTARG",
        "OPTERR",
        "OPTIND",
        "OSTYPE",
        "PATH",
        "PIPESTATUS",
        "POSIXLY_CORRECT",
        "PPID",
        "PROMPT_COMMAND",
        "PROMPT_DIRTRIM",
        "PS0",
        "PS1",
        "PS2",
        "PS3",
        "PS4",
        "PWD",
        "RANDOM",
        "READLINE_LINE",
        "READLINE_MARK",
        "READLINE_POINT",
        "REPLY",
        "SECONDS",
        "SHELL",
        "SHELLOPTS",
        "SHLVL",
        "SRANDOM",
        "TIMEFORMAT",
        "TMOUT",
        "TMPDIR",
        "UID",
        "_",
    ];
    let dir = tempfile::tempdir().unwrap();
    let settings = CondorSettings {
        log_directory: dir.path().display().to_string(),
        ..CondorSettings::default()
    };
    let (mut direct, mut wrapper) = (0, 0);
    for name in BASH_VARIABLES {
        let mut request = JobRequest::new(
            "bash-variable",
            vec![Command::Argv(vec!["/usr/bin/env".into()])],
        );
        request
            .environment
            .insert((*name).to_owned(), "sentinel value".into());
        if request.validate().is_err() {
            continue;
        }
        if render::mode(&request, &settings) == Mode::Wrapper {
            wrapper += 1;
            continue;
        }
        direct += 1;
        let layout = render::JobLayout::for_request(&request, &settings.log_directory);
        std::fs::create_dir_all(layout.dir()).unwrap();
        let rendered = render::render(&request, &settings).unwrap();
        let proc = submit_lang::build_procs(&rendered.main().contents, &[], 7, "/", 0)
            .unwrap()
            .remove(0);
        let status = std::process::Command::new(&proc.cmd)
            .args(&proc.argv)
            .env_clear()
            .envs(proc.env.iter().map(|(k, v)| (k, v)))
            .status()
            .unwrap();
        assert!(status.success());
        let log = std::fs::read_to_string(layout.render_log(7)).unwrap();
        assert!(
            log.lines().any(|l| l == format!("{name}=sentinel value")),
            "{name} did not arrive through bash:\n{log}"
        );
    }
    assert!(
        direct > 50 && wrapper >= render::BASH_STARTUP_VARIABLES.len(),
        "{direct} direct, {wrapper} wrapper"
    );
}
