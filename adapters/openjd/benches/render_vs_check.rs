//! Bundles rendered per second against `openjd check` of the same template, in one run.
//! `cargo bench -p farm-openjd --bench render_vs_check`; the openjd program is
//! `$FARM_OPENJD_BIN` (default `openjd`). Without it only the render rate is printed.

use std::time::{Duration, Instant};

use farm_core::JobRequest;

fn main() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/requests");
    let request =
        JobRequest::from_path(&fixtures.join("katana-disk-render.yaml")).expect("fixture");
    let bundle = farm_openjd::render::render(&request).expect("renders");

    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        std::hint::black_box(farm_openjd::render::render(std::hint::black_box(&request)).unwrap());
        n += 1;
    }
    let render_rate = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "render: {n} bundles in {:.2?} = {render_rate:.0} bundles/s",
        start.elapsed()
    );

    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.yaml");
    std::fs::write(&template, &bundle.template).unwrap();
    let openjd = std::env::var("FARM_OPENJD_BIN").unwrap_or_else(|_| "openjd".into());
    let mut checks = 0u64;
    let start = Instant::now();
    while checks < 10 {
        match std::process::Command::new(&openjd)
            .arg("check")
            .arg(&template)
            .output()
        {
            Ok(out) if out.status.success() => checks += 1,
            Ok(out) => panic!(
                "openjd check refused the template: {}",
                String::from_utf8_lossy(&out.stdout)
            ),
            Err(e) => {
                println!("openjd check: not run ({openjd}: {e})");
                return;
            }
        }
    }
    let check_rate = checks as f64 / start.elapsed().as_secs_f64();
    println!(
        "openjd check: {checks} runs in {:.2?} = {check_rate:.2} checks/s",
        start.elapsed()
    );
    println!(
        "ratio: rendering is {:.0}x faster than `openjd check` of the same template",
        render_rate / check_rate
    );
}
