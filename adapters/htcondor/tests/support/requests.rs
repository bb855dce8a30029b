//! Adversarial requests for property tests: argv elements, environment values, names and
//! directories built from the pieces that break submit files (macro syntax, both quote
//! characters, blanks, backslashes, control characters, Unicode, line breaks).

use std::collections::BTreeMap;

use farm_core::{Command, FrameSet, JobRequest, Repeat};
use proptest::prelude::*;

/// Text made of submit-file hazards and plain words. Line breaks are rare, so most values
/// can be written in the submit language and the direct mode is exercised.
pub fn adversarial() -> impl Strategy<Value = String> {
    // Mostly hazards the submit language can carry (so the direct route is exercised),
    // sometimes ones it cannot (so the fallback to the wrapper is too).
    prop_oneof![
        19 => prop::collection::vec(carried_piece(), 0..7).prop_map(|parts| parts.concat()),
        1 => prop::collection::vec(prop_oneof![3 => carried_piece(), 1 => uncarried_piece()], 1..7).prop_map(|parts| parts.concat()),
    ]
}

/// Pieces that break naive quoting but that the submit language can carry.
fn carried_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-zA-Z0-9_./:=@%+,-]{1,6}",
        3 => Just("$".to_owned()),
        2 => Just("$$".to_owned()),
        2 => Just("$(".to_owned()),
        2 => Just("$(Process)".to_owned()),
        1 => Just("$ENV(HOME)".to_owned()),
        1 => Just("$RANDOM_INTEGER(1,9)".to_owned()),
        1 => Just("$x".to_owned()),
        1 => Just(":".to_owned()),
        1 => Just("$F(".to_owned()),
        2 => Just("(".to_owned()),
        2 => Just(")".to_owned()),
        1 => Just("DOLLAR".to_owned()),
        3 => Just("'".to_owned()),
        1 => Just("''".to_owned()),
        3 => Just("\"".to_owned()),
        1 => Just("\"\"".to_owned()),
        3 => Just(" ".to_owned()),
        2 => Just("\t".to_owned()),
        2 => Just("\\".to_owned()),
        1 => Just("#".to_owned()),
        1 => Just(";".to_owned()),
        1 => Just("=".to_owned()),
        1 => Just("{".to_owned()),
        1 => Just("}".to_owned()),
        1 => Just("queue".to_owned()),
        1 => Just("+FarmName = \"x\"".to_owned()),
        2 => Just("é漢字🎬".to_owned()),
        1 => Just("\u{1}".to_owned()),
        1 => Just("\u{1b}[0m".to_owned()),
        1 => Just("\u{7f}".to_owned()),
        1 => Just("\u{a0}".to_owned()),
        1 => Just("\u{b}\u{c}".to_owned()),
    ]
}

/// Pieces no submit-file value can carry exactly: the wrapper route takes them.
fn uncarried_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$(DOLLAR)".to_owned()),
        Just("$(dollar)".to_owned()),
        Just("$$(Memory)".to_owned()),
        Just("\n".to_owned()),
        Just("\r".to_owned()),
    ]
}

/// One line (names, directories): line breaks replaced.
pub fn one_line() -> impl Strategy<Value = String> {
    adversarial().prop_map(|s| s.replace(['\n', '\r'], " "))
}

fn env_name() -> impl Strategy<Value = String> {
    "[A-Z_][A-Z0-9_]{0,8}".prop_filter("a name requests accept", |n| {
        farm_core::request::check_env_name(n).is_ok()
    })
}

/// An argv element: adversarial text kept literal (`{` doubled), sometimes with a
/// placeholder when the request has frames.
fn arg(with_frames: bool) -> impl Strategy<Value = String> {
    (adversarial(), 0..10u8).prop_map(move |(text, pick)| {
        let literal = text.replace('{', "{{");
        match (with_frames, pick) {
            (true, 0) => format!("{literal}{{chunk_first}}"),
            (true, 1) => format!("{{chunk_last}}{literal}"),
            (true, 2) => format!("{literal}{{chunk_index}}"),
            (true, 4) => format!("{{frame}}{literal}"),
            (_, 3) => format!("{literal}{{render_context}}"),
            _ => literal,
        }
    })
}

/// A valid-shaped request (callers still validate): one command, adversarial argv and
/// environment, sometimes frames, a working directory, a log directory, tags.
pub fn request() -> impl Strategy<Value = JobRequest> {
    let frames = prop::option::weighted(0.4, (1u32..3000, 1u32..6, 1u32..4, any::<bool>()));
    (
        frames,
        one_line(),
        one_line(),
        prop::option::of(one_line()),
        prop::option::of(one_line()),
        any::<u128>(),
    )
        .prop_flat_map(|(frames, name, program, workdir, logdir, ctx)| {
            let with_frames = frames.is_some();
            (
                Just((frames, name, program, workdir, logdir, ctx)),
                prop::collection::vec(arg(with_frames), 0..6),
                prop::collection::btree_map(env_name(), adversarial(), 0..4),
                prop::collection::vec("[a-z0-9:._-]{1,12}", 0..3),
                -1000i32..=1000,
            )
        })
        .prop_map(
            |((frames, name, program, workdir, logdir, ctx), args, env, tags, priority)| {
                let program = if program.trim().is_empty() {
                    "/bin/echo".to_owned()
                } else {
                    format!("/opt/{}", program.replace('{', "{{"))
                };
                let mut argv = vec![program];
                argv.extend(args);
                let mut request = JobRequest::new(
                    if name.trim().is_empty() {
                        "job".to_owned()
                    } else {
                        name
                    },
                    vec![Command::Argv(argv)],
                );
                request.render_context =
                    uuid::Builder::from_random_bytes(ctx.to_le_bytes()).into_uuid();
                request.environment = env.into_iter().collect::<BTreeMap<_, _>>();
                request.working_directory = workdir.map(|w| format!("/tmp/{w}"));
                request.log_directory = logdir.map(|l| format!("/farm logs/{l}"));
                request.tags = tags;
                request.priority = priority;
                if let Some((start, len, chunk, per_chunk)) = frames {
                    request.frames =
                        Some(FrameSet::range(start, start + len - 1).expect("valid range"));
                    if per_chunk {
                        request.repeat = Repeat::PerChunk;
                        request.chunk_size = chunk;
                    } else {
                        request.chunk_size = 1;
                    }
                }
                request
            },
        )
}
