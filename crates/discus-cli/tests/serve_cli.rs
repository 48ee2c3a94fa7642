//! `discus serve` as a process on loopback with random ports, driven by DCMTK's `storescu` (an
//! independent DICOM implementation) and plain HTTP:
//! - refusals: STOW-RS of garbage (400), of another study's instance (409 with (0008,1198) and
//!   reason 0xA900), a wrong or missing token (401), a calling AE title not on the allow-list;
//! - a synthetic study sent by `storescu --max-pdu 16384` completes one job with 25 findings;
//!   re-sending it with `--max-pdu 131072` starts no second job;
//! - kill -9 during a job, restart: the job is redone once and there is exactly one result;
//! - a study without a usable series ends in `no_usable_series`;
//! - (`serve/orthanc.rs`) the round trip through a real Orthanc, and the SR checks (dsrdump,
//!   dciodvfy, highdicom) on the SR that came back through it;
//! - (`serve/load.rs`) 50 studies from 4 concurrent senders: 50 jobs, 50 SRs.
//!
//! Expected SOP Instance UIDs come from `dcmdump` (DCMTK), not from discus.

use discus_model::{train, TrainRequest};
use discus_synth::cohort::{generate, SynthConfig};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const TOKEN: &str = "test-token-5b1f";

mod common;
use common::files_under;

#[path = "serve/load.rs"]
mod load;
#[path = "serve/orthanc.rs"]
mod orthanc;

struct Fixture {
    cohort: PathBuf,
    model: PathBuf,
    /// Study folders of the cohort (train_images/<study>).
    studies: Vec<PathBuf>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = tempfile::tempdir().unwrap().keep();
        let cohort = root.join("cohort");
        generate(
            &cohort,
            &SynthConfig {
                studies: 2,
                sites: 1,
                seed: 31,
                readers: 1,
                quirk_rate: 0.0,
                matrix_scale: 0.25,
                ..Default::default()
            },
            &|_| {},
        )
        .unwrap();
        let model = root.join("model");
        let mut r = TrainRequest::new(vec![cohort.clone()], model.clone());
        r.seed = 5;
        r.epochs = 1;
        r.batch_studies = 2;
        r.architecture.localiser_width = 8;
        r.architecture.grader_width = 8;
        r.preprocessing.localiser_grid = 32;
        r.preprocessing.localiser_spacing_mm = 9.0;
        r.preprocessing.crop.rows = 16;
        r.preprocessing.crop.columns = 16;
        r.preprocessing.crop.spacing_mm = 3.0;
        train(&r, &|_| {}).unwrap();
        let layout = discus_core::layout::Layout::new(&cohort);
        let images = layout.images(discus_core::layout::Split::Train);
        let mut studies: Vec<PathBuf> = std::fs::read_dir(&images)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        studies.sort();
        Fixture {
            cohort,
            model,
            studies,
        }
    })
}

/// True when the DCMTK tool `name` runs (else skipped, see `common::tool`).
fn tool(name: &str) -> bool {
    common::tool(name, "DCMTK")
}

/// A running `discus serve`.
struct Serve {
    child: Child,
    http: String,
    dicom_port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, data: &Path, model: &Path, stable_age_s: f64) -> PathBuf {
    write_config_with(dir, data, model, stable_age_s, "")
}

fn write_config_with(
    dir: &Path,
    data: &Path,
    model: &Path,
    stable_age_s: f64,
    extra: &str,
) -> PathBuf {
    let cfg = dir.join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"data_dir = "{}"
model = "{}"
[http]
bind = "127.0.0.1:0"
token = "{TOKEN}"
[dicom]
bind = "127.0.0.1:0"
ae_title = "DISCUS"
allowed_ae_titles = ["SENDER", "SENDER2"]
read_timeout_s = 10
[trigger]
stable_age_s = {stable_age_s}
poll_ms = 100
{extra}
"#,
            data.display(),
            model.display()
        ),
    )
    .unwrap();
    cfg
}

fn start(config: &Path, env: &[(&str, &str)]) -> Serve {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_discus"));
    cmd.args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start discus serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut http, mut dicom) = (None, None);
    while http.is_none() || dicom.is_none() {
        let line = lines
            .next()
            .expect("discus serve stopped before printing its addresses")
            .unwrap();
        if let Some(a) = line.strip_prefix("http ") {
            http = Some(format!("http://{a}"));
        }
        if let Some(a) = line.strip_prefix("dicom ") {
            dicom = Some(a.rsplit(':').next().unwrap().parse().unwrap());
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Serve {
        child,
        http: http.unwrap(),
        dicom_port: dicom.unwrap(),
    }
}

fn get(s: &Serve, path: &str, token: Option<&str>) -> (u16, String) {
    let mut r = ureq::get(&format!("{}{path}", s.http));
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    match r.call() {
        Ok(resp) => (resp.status(), resp.into_string().unwrap()),
        Err(ureq::Error::Status(c, resp)) => (c, resp.into_string().unwrap_or_default()),
        Err(e) => panic!("GET {path}: {e}"),
    }
}

fn stow(s: &Serve, path: &str, parts: &[(&str, Vec<u8>)]) -> (u16, String) {
    let boundary = "b0undary-7f3a";
    let mut body = Vec::new();
    for (ct, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: {ct}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let r = ureq::post(&format!("{}{path}", s.http))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .set(
            "Content-Type",
            &format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        )
        .send_bytes(&body);
    match r {
        Ok(resp) => (resp.status(), resp.into_string().unwrap()),
        Err(ureq::Error::Status(c, resp)) => (c, resp.into_string().unwrap_or_default()),
        Err(e) => panic!("POST {path}: {e}"),
    }
}

/// [`stow`], expecting status `want`; the response body as JSON.
fn stow_expect(s: &Serve, path: &str, parts: &[(&str, Vec<u8>)], want: u16) -> Value {
    let (code, body) = stow(s, path, parts);
    assert_eq!(code, want, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The Prometheus text of `/metrics`.
fn metrics(s: &Serve) -> String {
    get(s, "/metrics", Some(TOKEN)).1
}

fn jobs(s: &Serve) -> Vec<Value> {
    let (code, body) = get(s, "/jobs", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["jobs"].as_array().unwrap().clone()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True once a job is neither queued nor running.
fn ended(job: &Value) -> bool {
    job["state"] != "queued" && job["state"] != "running"
}

/// Waits until the first job satisfies `pred`, and returns it.
fn wait_first_job(s: &Serve, what: &str, timeout: Duration, pred: fn(&Value) -> bool) -> Value {
    wait_for(what, timeout, || jobs(s).first().is_some_and(pred));
    jobs(s).swap_remove(0)
}

fn storescu(s: &Serve, calling: &str, max_pdu: u32, dir: &Path) -> std::process::Output {
    Command::new("storescu")
        .args(["-aet", calling, "-aec", "DISCUS", "--max-pdu"])
        .arg(max_pdu.to_string())
        .args(["+sd", "+r", "127.0.0.1"])
        .arg(s.dicom_port.to_string())
        .arg(dir)
        .output()
        .expect("run storescu")
}

/// The first value of `tag` ("gggg,eeee") in a file according to dcmdump.
fn dcmdump_value(file: &Path, tag: &str) -> String {
    let o = Command::new("dcmdump")
        .args(["+P", tag])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let start = text.find('[').unwrap() + 1;
    let end = text[start..].find(']').unwrap() + start;
    text[start..end].to_string()
}

/// The SOP Instance UID of a file according to dcmdump.
fn dcmdump_sop_uid(file: &Path) -> String {
    dcmdump_value(file, "0008,0018")
}

/// The Study Instance UID of a file according to dcmdump.
fn dcmdump_study_uid(file: &Path) -> String {
    dcmdump_value(file, "0020,000d")
}

#[test]
fn http_refuses_garbage_wrong_tokens_and_other_studies() {
    if !tool("dcmdump") {
        return;
    }
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &tmp.path().join("data"), &f.model, 60.0);
    let s = start(&cfg, &[]);
    assert_eq!(get(&s, "/health", None).0, 200);
    assert_eq!(get(&s, "/jobs", None).0, 401);
    assert_eq!(get(&s, "/jobs", Some("wrong-token")).0, 401);
    assert_eq!(get(&s, "/metrics", Some("test-token-5b1")).0, 401);
    assert_eq!(get(&s, "/jobs", Some(TOKEN)).0, 200);

    // Garbage: 400, with a failed item of reason 0xC000.
    let v = stow_expect(
        &s,
        "/dicomweb/studies",
        &[("application/dicom", b"this is not DICOM at all".to_vec())],
        400,
    );
    assert_eq!(v["00081198"]["Value"][0]["00081197"]["Value"][0], 0xC000);

    // A real instance posted to another study's URL: 409, (0008,1198) names it with 0xA900.
    let file = files_under(&f.studies[0])[0].clone();
    let sop = dcmdump_sop_uid(&file);
    let study = dcmdump_study_uid(&file);
    let v = stow_expect(
        &s,
        "/dicomweb/studies/1.2.3.999",
        &[("application/dicom", std::fs::read(&file).unwrap())],
        409,
    );
    let item = &v["00081198"]["Value"][0];
    assert_eq!(item["00081155"]["Value"][0], sop.as_str());
    assert_eq!(item["00081197"]["Value"][0], 0xA900);
    assert!(v.get("00081199").is_none());

    // The same instance to its own study: 200 with (0008,1199).
    let v = stow_expect(
        &s,
        &format!("/dicomweb/studies/{study}"),
        &[("application/dicom", std::fs::read(&file).unwrap())],
        200,
    );
    assert_eq!(
        v["00081199"]["Value"][0]["00081155"]["Value"][0],
        sop.as_str()
    );

    // One good part and one garbage part: 202, one stored, one failed.
    stow_expect(
        &s,
        "/dicomweb/studies",
        &[
            ("application/dicom", std::fs::read(&file).unwrap()),
            ("application/dicom", vec![0u8; 300]),
        ],
        202,
    );

    // Not multipart/related: 415.
    let r = ureq::post(&format!("{}/dicomweb/studies", s.http))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .set("Content-Type", "application/json")
        .send_string("{}");
    assert!(matches!(r, Err(ureq::Error::Status(415, _))));

    let metrics = metrics(&s);
    assert!(
        metrics.contains("discus_http_unauthorized_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("discus_instances_refused_total{reason=\"other_study\"} 1"),
        "{metrics}"
    );
}

#[test]
fn an_unknown_calling_ae_title_is_refused() {
    if !tool("storescu") {
        return;
    }
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &tmp.path().join("data"), &f.model, 60.0);
    let s = start(&cfg, &[]);
    let o = storescu(&s, "STRANGER", 16384, &f.studies[0]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.status.success(), "storescu succeeded: {text}");
    assert!(text.contains("Association Rejected"), "{text}");
    let metrics = metrics(&s);
    assert!(
        !metrics.contains("discus_instances_stored_total"),
        "{metrics}"
    );
}

#[test]
fn a_study_sent_by_storescu_completes_one_job_and_a_resend_none() {
    if !tool("storescu") {
        return;
    }
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // DCMTK's storescp is the PACS the SR goes back to; a closed port is a destination that never
    // answers (its delivery ends in the dead-letter list).
    let pacs_dir = tmp.path().join("pacs");
    std::fs::create_dir_all(&pacs_dir).unwrap();
    let pacs_port = free_port();
    let mut pacs = Command::new("storescp")
        .args(["-aet", "PACS", "--output-directory"])
        .arg(&pacs_dir)
        .arg(pacs_port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start storescp");
    let dead_port = free_port();
    let cfg = write_config_with(
        tmp.path(),
        &data,
        &f.model,
        1.0,
        &format!(
            r#"[delivery]
attempts = 2
backoff_s = 0.1
[[destinations]]
kind = "c-store"
address = "127.0.0.1:{pacs_port}"
ae_title = "PACS"
[[destinations]]
kind = "c-store"
address = "127.0.0.1:{dead_port}"
ae_title = "NOBODY"
"#
        ),
    );
    let s = start(&cfg, &[]);
    let n_files = files_under(&f.studies[0]).len();
    let o = storescu(&s, "SENDER", 16384, &f.studies[0]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = &wait_first_job(&s, "the job to finish", Duration::from_secs(120), ended);
    let js = jobs(&s);
    assert_eq!(js.len(), 1, "{js:?}");
    assert_eq!(j["state"], "done", "{j}");
    assert_eq!(j["instances"], n_files as u64, "{j}");
    assert_eq!(j["runs"], 1);
    let (last, started, finished) = (
        j["last_instance"].as_f64().unwrap(),
        j["started"].as_f64().unwrap(),
        j["finished"].as_f64().unwrap(),
    );
    println!(
        "figures: {n_files} instances; last instance -> result {:.2} s (stable_age 1 s), job run {:.2} s",
        finished - last,
        finished - started
    );
    let result: Value = serde_json::from_slice(
        &std::fs::read(
            data.join("results")
                .join(j["id"].to_string())
                .join("findings.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let findings = result["prediction"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 25);
    for fi in findings {
        let p: f64 = fi["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum();
        assert!((p - 1.0).abs() < 1e-3, "{fi}");
    }
    // The study id in the result is discus's id of the Study Instance UID dcmdump reads.
    let uid = dcmdump_study_uid(&files_under(&f.studies[0])[0]);
    assert_eq!(
        result["prediction"]["study"].as_u64().unwrap(),
        discus_core::ids::id_from_uid(&uid)
    );

    // The SR: written, accepted by dsrdump as a TID 1500 report, delivered once to storescp; the
    // unreachable destination is dead-lettered after 2 attempts.
    let sr = data
        .join("results")
        .join(j["id"].to_string())
        .join("sr.dcm");
    let o = Command::new("dsrdump").arg(&sr).output().unwrap();
    let dump = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "dsrdump: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(dump.contains("Imaging Measurement Report"), "{dump}");
    wait_for("both deliveries to end", Duration::from_secs(60), || {
        let js = jobs(&s);
        let d = js[0]["deliveries"].as_array().cloned().unwrap_or_default();
        d.len() == 2 && d.iter().all(|d| d["state"] != "pending")
    });
    let js = jobs(&s);
    let deliveries = js[0]["deliveries"].as_array().unwrap();
    let state_of = |prefix: &str| {
        deliveries
            .iter()
            .find(|d| d["destination"].as_str().unwrap().contains(prefix))
            .unwrap()
            .clone()
    };
    assert_eq!(state_of("PACS@")["state"], "delivered", "{deliveries:?}");
    let dead = state_of("NOBODY@");
    assert_eq!(dead["state"], "dead", "{dead}");
    assert_eq!(dead["attempts"], 2, "{dead}");
    let received = files_under(&pacs_dir);
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(dcmdump_sop_uid(&received[0]), dcmdump_sop_uid(&sr));
    let _ = pacs.kill();
    let _ = pacs.wait();

    // The PACS routes the SR back with the study: it is accepted, ignored as an input.
    let back = tmp.path().join("back");
    std::fs::create_dir_all(&back).unwrap();
    std::fs::copy(&received[0], back.join("sr.dcm")).unwrap();
    let o = storescu(&s, "SENDER", 16384, &back);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The same study again, with a larger PDU: stored again, no second job.
    let o = storescu(&s, "SENDER2", 131072, &f.studies[0]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for(
        "the trigger to see the re-sent study",
        Duration::from_secs(30),
        || metrics(&s).contains("discus_jobs_deduplicated_total 1"),
    );
    assert_eq!(jobs(&s).len(), 1);
    let metrics = metrics(&s);
    assert!(
        metrics.contains("discus_instances_ignored_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("discus_dead_letters 1"), "{metrics}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn kill_9_during_a_job_then_restart_gives_exactly_one_result() {
    if !tool("storescu") {
        return;
    }
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // The job holds for a minute after ingest, so the kill lands mid-job.
    let cfg = write_config_with(
        tmp.path(),
        &data,
        &f.model,
        0.5,
        "hold_after_ingest_ms = 60000",
    );
    let mut s = start(&cfg, &[]);
    let o = storescu(&s, "SENDER", 65536, &f.studies[1]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_first_job(&s, "the job to run", Duration::from_secs(60), |j| {
        j["state"] == "running"
    });
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();
    drop(s);
    let cfg = write_config(tmp.path(), &data, &f.model, 0.5);
    let s = start(&cfg, &[]);
    wait_first_job(
        &s,
        "the redone job to finish",
        Duration::from_secs(120),
        |j| j["state"] == "done",
    );
    let js = jobs(&s);
    assert_eq!(js.len(), 1, "{js:?}");
    assert_eq!(js[0]["runs"], 2);
    let results: Vec<PathBuf> = std::fs::read_dir(data.join("results"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(results[0].join("findings.json").is_file());
    assert!(results[0].join("sr.dcm").is_file());
}

#[test]
fn a_study_without_a_usable_series_ends_in_a_reported_outcome() {
    if !tool("dcmodify") {
        return;
    }
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    // One series of the study, turned coronal: the classifier calls it other.
    let series = std::fs::read_dir(&f.studies[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let copy = tmp.path().join("coronal");
    std::fs::create_dir_all(&copy).unwrap();
    let mut parts = Vec::new();
    for file in files_under(&series) {
        let to = copy.join(file.file_name().unwrap());
        std::fs::copy(&file, &to).unwrap();
        let o = Command::new("dcmodify")
            .args(["-nb", "-m", "(0020,0037)=1\\0\\0\\0\\0\\-1"])
            .arg(&to)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        parts.push(("application/dicom", std::fs::read(&to).unwrap()));
    }
    let data = tmp.path().join("data");
    let cfg = write_config(tmp.path(), &data, &f.model, 0.5);
    let s = start(&cfg, &[]);
    stow_expect(&s, "/dicomweb/studies", &parts, 200);
    let j = &wait_first_job(&s, "the job to end", Duration::from_secs(60), ended);
    assert_eq!(j["state"], "no_usable_series", "{j}");
    assert!(j["outcome"].as_str().unwrap().contains("no series"), "{j}");
    let _ = &f.cohort;
}
