//! The "## Slurm" section of `docs/state-mapping.md` is generated from the adapter's state
//! table, so the documentation cannot drift from the code. Re-bless with
//! `FARM_BLESS=1 cargo test -p farm-slurm --test docs`.

use farm_slurm::parse::{NEVER_RUNS, SLURM_STATES};

fn section() -> String {
    let mut s = String::from(
        "## Slurm\n\n\
         Source: `SLURM_STATES` in `adapters/slurm/src/parse.rs`; a test checks it covers every code\n\
         of squeue's documented `JOB STATE CODES` list (`fixtures/slurm/squeue-job-state-codes.txt`)\n\
         and that this table is generated from it. States are matched by long name (`squeue\n\
         --json`, slurmrestd, sacct, jobcomp; sacct's `CANCELLED by 1000` counts as `CANCELLED`)\n\
         or compact code.\n\n\
         | Native | Code | State | Reason |\n|---|---|---|---|\n",
    );
    for row in SLURM_STATES {
        let code = if row.code.is_empty() {
            "(flag)".to_owned()
        } else {
            format!("`{}`", row.code)
        };
        let reason = match (row.name, row.reason) {
            ("PENDING", _) => {
                "Slurm's reason: `Priority`, `Dependency`, `BeginTime`, `JobHeldUser`, ..."
                    .to_owned()
            }
            ("FAILED", _) => {
                "`exit code N` or `killed by signal N` (from the raw wait status)".to_owned()
            }
            ("CANCELLED", r) => {
                format!("{r}; `a dependency did not complete` with `DependencyNeverSatisfied`")
            }
            ("COMPLETED" | "RUNNING", _) => String::new(),
            (_, r) => r.to_owned(),
        };
        s.push_str(&format!(
            "| `{}` | {code} | {} | {reason} |\n",
            row.name, row.state
        ));
    }
    s.push_str(
        "| anything else | | Failed | `unknown Slurm state \"X\"` |\n\n\
         An array is one job: Running if any task runs, else Waiting if any waits, else Failed if\n\
         any task failed (the reason names the chunk: `chunk 3: exit code 2`), else Cancelled if\n\
         any was cancelled, else Completed. Exit statuses: `squeue --json` and slurmrestd report a\n\
         raw wait status (256 is exit 1, 15 is signal 15); sacct and jobcomp report `code:signal`\n\
         (sacct's JSON exit code is not used: it says 0 for failed jobs). A job slurmctld no longer\n\
         holds is looked up in sacct, then the jobcomp file, then the adapter's journal (the last\n\
         terminal state it saw); a job this adapter submitted that none of them knows is Failed\n\
         with reason `lost: ...`; an id nobody knows is `JobNotFound`. `PREEMPTED`, `SUSPENDED` and\n\
         `STOPPED` are Waiting as the shared rules require; on a cluster whose `PreemptMode` is\n\
         `CANCEL` a preempted job therefore stays Waiting until slurmctld forgets it. A job only\n\
         sacct or jobcomp still knows has ended: if they last recorded a state that is not\n\
         terminal, it is Failed with `ended as PREEMPTED (preempted): Slurm no longer holds the\n\
         job`.\n\n\
         slurmctld being down or restarting is no state at all: while `squeue --json` lists\n\
         `errors[]` and no job (22.05 exits 0 with `slurm_load_jobs (error -1)`), or slurmrestd\n\
         answers `Unable to find JobId=N ... (error -1)`, every call is `Unavailable` (retryable),\n\
         so a job is never reported lost or unknown because slurmctld could not be asked. Only\n\
         \"Invalid job id\" means an id is unknown.\n\n\
         Jobs that cannot start: Slurm keeps a job it can never run `PENDING` for ever (an\n\
         administrator may still change the partition or the limits), so it stays Waiting, but a\n\
         pending reason of this table (`NEVER_RUNS`) is said in words: `can never run here:\n\
         PartitionConfig — the partition cannot satisfy the request`. `farm validate --farm`\n\
         asks `sbatch --test-only` first, which refuses such a request before it is submitted.\n\n\
         | Pending reason | Reason |\n|---|---|\n",
    );
    for (reason, why) in NEVER_RUNS {
        s.push_str(&format!("| `{reason}` | can never run here: {why} |\n"));
    }
    s.push('\n');
    s
}

#[test]
fn the_state_mapping_doc_is_generated_from_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/state-mapping.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc
        .find("## Slurm\n")
        .expect("docs/state-mapping.md has a ## Slurm section");
    let end = doc[start + 1..]
        .find("\n## ")
        .map_or(doc.len(), |i| start + 2 + i);
    let current = &doc[start..end];
    let expected = section();
    if current != expected {
        if std::env::var_os("FARM_BLESS").is_some() {
            std::fs::write(
                &path,
                format!("{}{}{}", &doc[..start], expected, &doc[end..]),
            )
            .unwrap();
            return;
        }
        panic!(
            "the Slurm section of docs/state-mapping.md is out of date: run `FARM_BLESS=1 cargo test -p farm-slurm --test docs`\n--- current\n{current}\n--- expected\n{expected}"
        );
    }
}
