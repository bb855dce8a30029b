//! Render rate of submit descriptions, and parsing a 10,000-job `condor_q -json` reply.
//!
//! `cargo bench -p farm-htcondor`; sample sizes are small so a run takes about a minute.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use farm_core::{Command, JobRequest};
use farm_htcondor::CondorSettings;
use farm_htcondor::parse::{self, Judge};
use farm_htcondor::render;

/// A typical disk render: ten commands per frame, a hundred frames, ten per task.
fn typical_request() -> JobRequest {
    let commands = (0..10)
        .map(|i| {
            Command::Argv(vec![
                "/opt/Katana7.0v1/bin/renderboot".into(),
                format!("--stage={i}"),
                "--frame={frame}".into(),
                "--output=/mnt/show/shot010/beauty/v003/beauty.{frame}.exr".into(),
                "it's a \"quoted\" $VALUE".into(),
            ])
        })
        .collect();
    let mut r = JobRequest::new("shot010_beauty_v003", commands);
    r.frames = Some("1001-1100".parse().unwrap());
    r.chunk_size = 10;
    r.environment
        .insert("KATANA_ROOT".into(), "/opt/Katana7.0v1".into());
    r.environment
        .insert("SCENE".into(), "shot 010 'hero'".into());
    r.tags = vec!["show:demo".into(), "shot:010".into()];
    r
}

/// One command, one frame per proc: the direct route with a 100-row queue table.
fn direct_request() -> JobRequest {
    let mut r = JobRequest::new(
        "shot010_beauty_v003",
        vec![Command::Argv(vec![
            "/opt/Katana7.0v1/bin/renderboot".into(),
            "--frame={frame}".into(),
            "it's $HOME".into(),
        ])],
    );
    r.frames = Some("1001-1100".parse().unwrap());
    r.environment
        .insert("SCENE".into(), "shot 010 'hero'".into());
    r
}

fn bench_render(c: &mut Criterion) {
    let settings = CondorSettings::default();
    let mut group = c.benchmark_group("render");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    for (name, request) in [
        ("10 commands x 100 frames (wrapper)", typical_request()),
        ("1 command x 100 frames (direct)", direct_request()),
    ] {
        request.validate().unwrap();
        group.bench_function(name, |b| {
            b.iter(|| render::render(black_box(&request), &settings).unwrap())
        });
    }
    group.finish();
}

/// `condor_q -json` for `n` procs: the recorded full ads, or the projection the adapter asks for.
fn condor_q_json(n: usize, projected: bool) -> String {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/htcondor/condor_q/condor_q_json_states.json"
    ))
    .unwrap();
    let ads: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&fixture).unwrap();
    let mut out = String::from("[\n");
    for i in 0..n {
        let mut ad = ads[i % ads.len()].clone();
        ad.insert("ClusterId".into(), (4243 + i / 100).into());
        ad.insert("ProcId".into(), (i % 100).into());
        ad.insert("FarmName".into(), "shot010_beauty_v003".into());
        ad.insert(
            "FarmRenderContext".into(),
            "6f1c0d9e-3b0a-4c1e-9d55-2f0a5b7c8e91".into(),
        );
        ad.insert("FarmTags".into(), "show:demo,shot:010".into());
        if projected {
            ad.retain(|k, _| parse::QUERY_ATTRIBUTES.contains(&k.as_str()));
        }
        if i > 0 {
            out.push_str(",\n");
        }
        out.push_str(&serde_json::to_string_pretty(&ad).unwrap());
        out.push('\n');
    }
    out.push_str("]\n");
    out
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("condor_q -json, 10000 jobs");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(10_000));
    let judge = Judge {
        now: 1_700_000_700,
        hold_timeout: Some(Duration::from_secs(3600)),
    };
    for (name, projected) in [
        ("projected ads (what the adapter asks for)", true),
        ("full ads", false),
    ] {
        let text = condor_q_json(10_000, projected);
        eprintln!("{name}: {} bytes", text.len());
        group.bench_function(format!("parse {name}"), |b| {
            b.iter(|| parse::parse_ads("condor_q", black_box(&text)).unwrap())
        });
        let ads = parse::parse_ads("condor_q", &text).unwrap();
        group.bench_function(format!("parse + fold into jobs, {name}"), |b| {
            b.iter(|| {
                let ads = parse::parse_ads("condor_q", black_box(&text)).unwrap();
                ads.chunks(100)
                    .map(|procs| parse::cluster_job(procs[0].cluster, procs, &[], judge))
                    .collect::<Vec<_>>()
            })
        });
        assert_eq!(ads.len(), 10_000);
    }
    group.finish();
}

criterion_group!(benches, bench_render, bench_parse);
criterion_main!(benches);
