//! Load: 50 small studies (copies of the fixture's two studies, each with its own hospital-style
//! UIDs, so 50 distinct job keys) sent by 4 concurrent `storescu` senders, one association per
//! study, PDUs of 16384 and 131072 bytes alternating. Every study gets exactly one job, one run
//! and one SR delivered to the PACS (DCMTK's `storescp`): none lost, none doubled. The expected
//! Study Instance UIDs are the ones `dcmodify` wrote, read back from the SRs by `dcmdump`.

use super::orthanc::copy_with_hospital_uids;
use super::*;
use std::collections::BTreeSet;

const STUDIES: usize = 50;
const SENDERS: usize = 4;

#[test]
fn fifty_studies_from_four_concurrent_senders_give_fifty_jobs_and_fifty_srs() {
    if !tool("storescu") || !tool("storescp") || !tool("dcmodify") {
        return;
    }
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut studies = Vec::new();
    for k in 0..STUDIES {
        let dir = tmp.path().join(format!("study-{k:02}"));
        let uid = copy_with_hospital_uids(&f.studies[k % f.studies.len()], &dir, 1000 + k as u64);
        studies.push((dir, uid));
    }
    let instances: usize = studies.iter().map(|(d, _)| files_under(d).len()).sum();
    let bytes: u64 = studies
        .iter()
        .flat_map(|(d, _)| files_under(d))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    println!(
        "figures: {STUDIES} studies, {instances} instances, {:.1} MB, prepared in {:.1} s",
        bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );

    let pacs_dir = tmp.path().join("pacs");
    std::fs::create_dir_all(&pacs_dir).unwrap();
    let pacs_port = free_port();
    let pacs = Command::new("storescp")
        .args(["-aet", "PACS", "--output-directory"])
        .arg(&pacs_dir)
        .arg(pacs_port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start storescp");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _pacs = Kill(pacs);
    let data = tmp.path().join("data");
    let cfg = write_config_with(
        tmp.path(),
        &data,
        &f.model,
        2.0,
        &format!(
            r#"[delivery]
attempts = 5
backoff_s = 0.5
[[destinations]]
kind = "c-store"
address = "127.0.0.1:{pacs_port}"
ae_title = "PACS"
"#
        ),
    );
    let s = start(&cfg, &[]);
    let t_send = Instant::now();
    std::thread::scope(|scope| {
        for sender in 0..SENDERS {
            let studies = &studies;
            let s = &s;
            scope.spawn(move || {
                for (k, (dir, _)) in studies.iter().enumerate().skip(sender).step_by(SENDERS) {
                    let pdu = if k % 2 == 0 { 16384 } else { 131072 };
                    let calling = if sender % 2 == 0 { "SENDER" } else { "SENDER2" };
                    let o = storescu(s, calling, pdu, dir);
                    assert!(
                        o.status.success(),
                        "sender {sender}, study {k}: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            });
        }
    });
    let sent_s = t_send.elapsed().as_secs_f64();
    wait_for(
        "every job and delivery to end",
        Duration::from_secs(600),
        || {
            let js = jobs(&s);
            js.len() >= STUDIES
                && js.iter().all(|j| {
                    j["state"] != "queued"
                        && j["state"] != "running"
                        && j["deliveries"]
                            .as_array()
                            .is_some_and(|d| d.len() == 1 && d[0]["state"] != "pending")
                })
        },
    );
    let total_s = t_send.elapsed().as_secs_f64();
    let js = jobs(&s);
    assert_eq!(js.len(), STUDIES, "{js:?}");
    for j in &js {
        assert_eq!(j["state"], "done", "{j}");
        assert_eq!(j["runs"], 1, "{j}");
        assert_eq!(j["deliveries"][0]["state"], "delivered", "{j}");
    }
    let metrics = metrics(&s);
    assert!(
        metrics.contains(&format!("discus_instances_stored_total {instances}")),
        "{metrics}"
    );
    // The PACS holds exactly one SR per sent study.
    let received = files_under(&pacs_dir);
    assert_eq!(received.len(), STUDIES, "{received:?}");
    let got: BTreeSet<String> = received.iter().map(|p| dcmdump_study_uid(p)).collect();
    let want: BTreeSet<String> = studies.iter().map(|(_, u)| u.clone()).collect();
    assert_eq!(got, want);
    println!(
        "figures: sent in {sent_s:.1} s by {SENDERS} senders; all {STUDIES} SRs in the PACS after \
         {total_s:.1} s ({:.1} studies/min end to end, debug build, stable_age 2 s)",
        STUDIES as f64 / total_s * 60.0
    );
}
