//! The HTCondor table in `docs/state-mapping.md` is generated from `parse::JOB_STATUS`:
//! run `FARM_BLESS=1 cargo test -p farm-htcondor --test docs` after changing the table.

use std::path::Path;

const START: &str = "<!-- htcondor-table:start -->\n";
const END: &str = "<!-- htcondor-table:end -->";

#[test]
fn the_state_mapping_doc_shows_the_table_in_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/state-mapping.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let section = doc.find("\n## HTCondor\n").expect("an HTCondor section");
    let start = doc[section..]
        .find(START)
        .map(|i| section + i + START.len())
        .expect("the table start marker in the HTCondor section");
    let end = doc[start..]
        .find(END)
        .map(|i| start + i)
        .expect("the table end marker");
    let expected = farm_htcondor::parse::status_table_markdown();
    if doc[start..end] != expected {
        if std::env::var_os("FARM_BLESS").is_some() {
            let updated = format!("{}{}{}", &doc[..start], expected, &doc[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        panic!(
            "docs/state-mapping.md's HTCondor table is out of date; run FARM_BLESS=1 cargo test -p farm-htcondor --test docs\nexpected:\n{expected}"
        );
    }
}
