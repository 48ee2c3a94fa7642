//! The Orthanc round trip: DCMTK's `storescu` sends a synthetic study to a real Orthanc (Debian's
//! `orthanc` + `orthanc-dicomweb`, started here on loopback with random ports, stopped by PID);
//! a Lua `OnStableStudy` routes the stable study to `discus serve` (C-STORE, a store job); discus STOWs its SR
//! into Orthanc's `/dicom-web`. QIDO-RS (Modality SR) finds exactly one series, WADO-RS returns the
//! bytes discus wrote, and re-sending the study with the SR (Orthanc routes it again) makes no
//! second job and no second SR. The SR that went through Orthanc is then checked by `dsrdump`,
//! `dciodvfy` (no errors) and highdicom (every finding's codes, probabilities and point).

use super::common::{pyvenv, root};
use super::*;

/// Where Debian's packages put Orthanc and its DICOMweb plugin (`dpkg -L orthanc orthanc-dicomweb`).
const ORTHANC: &str = "/usr/sbin/Orthanc";
const DICOMWEB_PLUGIN: &str = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";

/// A running Orthanc, killed (by PID) and reaped on every exit path.
pub(crate) struct Orthanc {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
    /// Its DICOM port (AE title ORTHANC).
    pub dicom_port: u16,
    log: PathBuf,
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Orthanc {
    /// The log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// True when Orthanc and the DICOMweb plugin are installed; otherwise a recorded skip.
pub(crate) fn have_orthanc() -> bool {
    for p in [ORTHANC, DICOMWEB_PLUGIN] {
        if !Path::new(p).exists() {
            discus_core::crosscheck::skip(format!(
                "{p} is missing: install Debian's orthanc and orthanc-dicomweb"
            ));
            return false;
        }
    }
    true
}

/// Starts Orthanc in `dir` (storage and index there) on free loopback ports, routing every stable
/// study to the AE `DISCUS` at `discus_port`; returns once `/system` answers.
pub(crate) fn start_orthanc(
    dir: &Path,
    discus_port: u16,
    http_port: u16,
    dicom_port: u16,
) -> Orthanc {
    std::fs::create_dir_all(dir).unwrap();
    let lua = dir.join("route.lua");
    std::fs::write(
        &lua,
        // Through the REST API's store job: Orthanc 1.10.1's Lua `SendToModality` fails with
        // "Unable to read attachment dicom of instance ..." (seen here; the job path works).
        "function OnStableStudy(studyId, tags, metadata)\n  \
         RestApiPost('/modalities/discus/store', '{\"Resources\": [\"' .. studyId .. '\"], \"Synchronous\": false}')\n\
         end\n",
    )
    .unwrap();
    let config = serde_json::json!({
        "Name": "discus-test",
        "StorageDirectory": dir.join("storage"),
        "IndexDirectory": dir.join("index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": false,
        "AuthenticationEnabled": false,
        "Plugins": [DICOMWEB_PLUGIN],
        "DicomWeb": { "Enable": true, "Root": "/dicom-web/" },
        "DicomModalities": { "discus": ["DISCUS", "127.0.0.1", discus_port] },
        "StableAge": 1,
        "LuaScripts": [lua],
        "StorageCompression": false,
        // A re-sent instance replaces the stored one, so the study changes and becomes stable
        // (and is routed) again, as a PACS that re-exports would do.
        "OverwriteInstances": true,
        "SaveJobs": false,
        "HttpCompressionEnabled": false,
    });
    let cfg = dir.join("orthanc.json");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let log = dir.join("orthanc.log");
    let child = Command::new(ORTHANC)
        .arg(&cfg)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .expect("start Orthanc");
    let o = Orthanc {
        child,
        http: format!("http://127.0.0.1:{http_port}"),
        dicom_port,
        log,
    };
    let t0 = Instant::now();
    loop {
        if let Ok(r) = ureq::get(&format!("{}/system", o.http))
            .timeout(Duration::from_secs(2))
            .call()
        {
            if r.status() == 200 {
                break;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "Orthanc did not come up:\n{}",
            o.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    o
}

/// GET on Orthanc, body as text; panics with the status otherwise.
pub(crate) fn orthanc_get(o: &Orthanc, path: &str, accept: &str) -> (u16, Vec<u8>, String) {
    match ureq::get(&format!("{}{path}", o.http))
        .set("Accept", accept)
        .call()
    {
        Ok(r) => {
            let ct = r.header("Content-Type").unwrap_or_default().to_string();
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut r.into_reader(), &mut body).unwrap();
            (200, body, ct)
        }
        Err(ureq::Error::Status(c, r)) => {
            (c, r.into_string().unwrap_or_default().into(), String::new())
        }
        Err(e) => panic!("GET {path}: {e}"),
    }
}

/// QIDO-RS: the JSON array an Orthanc search answers (empty on 204).
pub(crate) fn qido(o: &Orthanc, path: &str) -> Vec<Value> {
    let (code, body, _) = orthanc_get(o, path, "application/dicom+json");
    match code {
        204 => Vec::new(),
        200 if body.is_empty() => Vec::new(),
        200 => serde_json::from_slice::<Vec<Value>>(&body).unwrap(),
        c => panic!("QIDO {path}: HTTP {c}: {}", String::from_utf8_lossy(&body)),
    }
}

/// The parts of a `multipart/related` body (RFC 2046), the boundary taken from `content_type`.
fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<Vec<u8>> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .unwrap_or_else(|| panic!("no boundary in {content_type}"))
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let find = |from: usize, pat: &[u8]| {
        body[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|i| i + from)
    };
    let mut parts = Vec::new();
    let mut at = find(0, delim.as_bytes()).expect("no first boundary");
    loop {
        let after = at + delim.len();
        if body[after..].starts_with(b"--") {
            break;
        }
        let headers_end = find(after, b"\r\n\r\n").expect("part without headers") + 4;
        let next = find(headers_end, format!("\r\n{delim}").as_bytes()).expect("unterminated part");
        parts.push(body[headers_end..next].to_vec());
        at = next + 2;
    }
    parts
}

/// Copies a study folder, giving it UIDs under the 2.25 root (as a hospital's are): one Study
/// Instance UID, one Series Instance UID per series folder, a new SOP Instance UID per file
/// (`dcmodify -gin`, which also updates the meta header).
pub(crate) fn copy_with_hospital_uids(from: &Path, to: &Path, salt: u64) -> String {
    let n = |k: u64| {
        // 2.25.<decimal of a 128-bit number>: deterministic from the salt.
        let x = ((salt as u128) << 64) | ((k as u128 + 1) * 0x9E37_79B9_7F4A_7C15);
        format!("2.25.{x}")
    };
    let study = n(0);
    let mut series_dirs: Vec<PathBuf> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    series_dirs.sort();
    for (k, sd) in series_dirs.iter().enumerate() {
        let out = to.join(sd.file_name().unwrap());
        std::fs::create_dir_all(&out).unwrap();
        let mut files = Vec::new();
        for f in files_under(sd) {
            let t = out.join(f.file_name().unwrap());
            std::fs::copy(&f, &t).unwrap();
            files.push(t);
        }
        let o = Command::new("dcmodify")
            .args(["-nb", "-gin", "-m"])
            .arg(format!("(0020,000d)={study}"))
            .arg("-m")
            .arg(format!("(0020,000e)={}", n(k as u64 + 1)))
            .args(&files)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    study
}

/// Sends a folder (recursively) to Orthanc.
fn storescu_orthanc(o: &Orthanc, dir: &Path) {
    let out = Command::new("storescu")
        .args([
            "-aet",
            "SENDER",
            "-aec",
            "ORTHANC",
            "+sd",
            "+r",
            "127.0.0.1",
        ])
        .arg(o.dicom_port.to_string())
        .arg(dir)
        .output()
        .expect("run storescu");
    assert!(
        out.status.success(),
        "storescu to Orthanc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Like `wait_for`, with the node's jobs and Orthanc's log in the failure message.
fn wait_seen(what: &str, timeout: Duration, s: &Serve, o: &Orthanc, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < timeout,
            "timed out waiting for {what}\njobs: {:#?}\nmetrics:\n{}\nOrthanc log:\n{}",
            jobs(s),
            metrics(s),
            o.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metric(s: &Serve, name: &str) -> f64 {
    let m = metrics(s);
    m.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// Runs highdicom's reader on `sr` and checks every finding of `prediction` is in it: tracking
/// identifier, stenosis finding, disc level site (CID 7604), laterality, the three probabilities
/// and the point (+0.5 px: highdicom's pixel frame has the first pixel's corner at 0) on the slice
/// whose SOP Instance UID `sop_of` (from dcmdump) gives for (series id, instance number).
pub(crate) fn highdicom_check(
    sr: &Path,
    prediction: &discus_model::StudyPrediction,
    sop_of: &std::collections::HashMap<(u64, i64), String>,
) {
    let Some(python) = pyvenv("highdicom", &["highdicom==0.28.2"]) else {
        return;
    };
    let out = Command::new(&python)
        .arg(root().join("scripts/highdicom_sr_read.py"))
        .arg(sr)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "highdicom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pair = |c: &Value| {
        (
            c[0].as_str().unwrap().to_string(),
            c[1].as_str().unwrap().to_string(),
        )
    };
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), prediction.findings.len());
    assert_eq!(groups.len(), 25);
    for f in &prediction.findings {
        let g = groups
            .iter()
            .find(|g| g["tracking_identifier"] == f.row_id.as_str())
            .unwrap_or_else(|| panic!("{} not found by highdicom", f.row_id));
        assert_eq!(pair(&g["finding"]), pair(&v["stenosis"]));
        assert_eq!(pair(&g["site"]), pair(&v["discs"][f.level.index()]));
        match f.condition.side() {
            Some(discus_core::Side::Left) => assert_eq!(pair(&g["laterality"]), pair(&v["left"])),
            Some(discus_core::Side::Right) => assert_eq!(pair(&g["laterality"]), pair(&v["right"])),
            None => assert!(g["laterality"].is_null()),
        }
        let ms = g["measurements"].as_array().unwrap();
        assert_eq!(ms.len(), 3, "{}", f.row_id);
        for (k, name) in ["P-NM", "P-MO", "P-SE"].iter().enumerate() {
            let m = ms.iter().find(|m| m[0] == *name).unwrap();
            assert!(
                (m[2].as_f64().unwrap() - f.probabilities[k]).abs() < 1e-6,
                "{} {name}: {} vs {}",
                f.row_id,
                m[2],
                f.probabilities[k]
            );
        }
        match &f.point {
            None => assert!(g["point"].is_null(), "{}", f.row_id),
            Some(p) => {
                let q = &g["point"];
                assert!((q[0].as_f64().unwrap() - (p.x + 0.5)).abs() < 1e-3, "{q}");
                assert!((q[1].as_f64().unwrap() - (p.y + 0.5)).abs() < 1e-3, "{q}");
                let want = sop_of
                    .get(&(p.series.0, p.instance))
                    .unwrap_or_else(|| panic!("no slice {} of series {}", p.instance, p.series));
                assert_eq!(q[2], want.as_str());
            }
        }
    }
}

/// (series id, instance number) -> SOP Instance UID of every file, read by dcmdump.
pub(crate) fn sop_uids_by_slice(dir: &Path) -> std::collections::HashMap<(u64, i64), String> {
    let mut map = std::collections::HashMap::new();
    for f in files_under(dir) {
        let o = Command::new("dcmdump")
            .args(["+P", "0020,000e", "+P", "0020,0013", "+P", "0008,0018"])
            .arg(&f)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        // The first (top-level) value of a tag: dcmdump prints "(gggg,eeee) VR [value] ...".
        let value = |tag: &str| {
            let l = text
                .lines()
                .find(|l| l.starts_with(tag))
                .unwrap_or_else(|| panic!("{tag} missing in {}", f.display()));
            let s = l.find('[').unwrap() + 1;
            l[s..s + l[s..].find(']').unwrap()].to_string()
        };
        map.insert(
            (
                discus_core::ids::id_from_uid(&value("(0020,000e)")),
                value("(0020,0013)").trim().parse().unwrap(),
            ),
            value("(0008,0018)"),
        );
    }
    map
}

pub(crate) fn dciodvfy_errors(path: &Path) -> Vec<String> {
    let out = Command::new("dciodvfy").arg(path).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ComprehensiveSR"), "{text}");
    eprintln!("dciodvfy {}:\n{text}", path.display());
    text.lines()
        .filter(|l| l.starts_with("Error"))
        .map(String::from)
        .collect()
}

#[test]
fn orthanc_routes_a_study_to_discus_and_gets_one_sr_back() {
    if !have_orthanc()
        || !tool("storescu")
        || !tool("dcmodify")
        || !tool("dsrdump")
        || !Path::new("/usr/bin/dciodvfy").exists() && {
            discus_core::crosscheck::skip("dciodvfy (Debian dicom3tools) is not installed");
            true
        }
    {
        return;
    }
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let study_dir = tmp.path().join("study");
    let study_uid = copy_with_hospital_uids(&f.studies[0], &study_dir, 0xD15C05);
    let n_files = files_under(&study_dir).len();

    let (o_http, o_dicom) = (free_port(), free_port());
    let data = tmp.path().join("data");
    let cfg = write_config_with(
        tmp.path(),
        &data,
        &f.model,
        1.0,
        &format!(
            r#"[delivery]
attempts = 3
backoff_s = 0.5
[[destinations]]
kind = "stow"
url = "http://127.0.0.1:{o_http}/dicom-web"
"#
        ),
    );
    // Orthanc's calling AE title must be allowed.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(r#"["SENDER", "SENDER2"]"#, r#"["ORTHANC"]"#);
    std::fs::write(&cfg, text).unwrap();
    let s = start(&cfg, &[]);
    let o = start_orthanc(&tmp.path().join("orthanc"), s.dicom_port, o_http, o_dicom);

    let t_sent = Instant::now();
    storescu_orthanc(&o, &study_dir);
    let sr_series_path = format!("/dicom-web/studies/{study_uid}/series?Modality=SR");
    wait_seen(
        "discus's SR in Orthanc",
        Duration::from_secs(180),
        &s,
        &o,
        || !qido(&o, &sr_series_path).is_empty(),
    );
    println!(
        "figures: {n_files} instances; storescu start -> SR in Orthanc {:.2} s (both stable ages 1 s)",
        t_sent.elapsed().as_secs_f64()
    );
    let js = jobs(&s);
    assert_eq!(js.len(), 1, "{js:?}");
    let job = js[0].clone();
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["instances"], n_files as u64, "{job}");

    // QIDO: exactly one SR series with one instance.
    let series = qido(&o, &sr_series_path);
    assert_eq!(series.len(), 1, "{series:?}");
    let series_uid = series[0]["0020000E"]["Value"][0]
        .as_str()
        .unwrap()
        .to_string();
    let instances = qido(
        &o,
        &format!("/dicom-web/studies/{study_uid}/series/{series_uid}/instances"),
    );
    assert_eq!(instances.len(), 1, "{instances:?}");
    let sop = instances[0]["00080018"]["Value"][0]
        .as_str()
        .unwrap()
        .to_string();

    // WADO-RS: the bytes discus wrote (and STOWed), byte for byte.
    let (code, body, ct) = orthanc_get(
        &o,
        &format!("/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop}"),
        "multipart/related; type=\"application/dicom\"",
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let parts = multipart_parts(&ct, &body);
    assert_eq!(parts.len(), 1);
    let written = data
        .join("results")
        .join(job["id"].to_string())
        .join("sr.dcm");
    let sent = std::fs::read(&written).unwrap();
    assert!(
        parts[0] == sent,
        "WADO-RS returned other bytes than discus's sr.dcm"
    );
    assert_eq!(dcmdump_sop_uid(&written), sop);
    let from_orthanc = tmp.path().join("from-orthanc");
    std::fs::create_dir_all(&from_orthanc).unwrap();
    let sr_path = from_orthanc.join("sr.dcm");
    std::fs::write(&sr_path, &parts[0]).unwrap();

    // The SR as the PACS holds it: dsrdump shows the TID 1500 report, dciodvfy finds no error,
    // highdicom reads every finding back as findings.json has it.
    let d = Command::new("dsrdump")
        .arg("+Pt") // print the template identification
        .arg(&sr_path)
        .output()
        .unwrap();
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    let dump = String::from_utf8_lossy(&d.stdout);
    assert!(dump.contains("Imaging Measurement Report"), "{dump}");
    assert!(dump.contains("TID 1500"), "{dump}");
    let errors = dciodvfy_errors(&sr_path);
    assert!(errors.is_empty(), "dciodvfy errors: {errors:#?}");
    let result: Value =
        serde_json::from_slice(&std::fs::read(written.with_file_name("findings.json")).unwrap())
            .unwrap();
    let prediction: discus_model::StudyPrediction =
        serde_json::from_value(result["prediction"].clone()).unwrap();
    assert_eq!(
        prediction.study,
        discus_core::StudyId(discus_core::ids::id_from_uid(&study_uid)),
        "the study id is discus's id of the UID dcmodify wrote"
    );
    highdicom_check(&sr_path, &prediction, &sop_uids_by_slice(&study_dir));

    // Orthanc routed the study again once the SR arrived (the study changed); discus stored it,
    // ignored the SR as an input and started no job. Then the PACS re-sends the study with the SR:
    // routed again, still one job and one SR series.
    wait_seen(
        "Orthanc to route the study with the SR",
        Duration::from_secs(60),
        &s,
        &o,
        || metric(&s, "discus_jobs_deduplicated_total") >= 1.0,
    );
    let before = metric(&s, "discus_jobs_deduplicated_total");
    storescu_orthanc(&o, &study_dir);
    storescu_orthanc(&o, &from_orthanc);
    wait_seen(
        "Orthanc to route the re-sent study",
        Duration::from_secs(60),
        &s,
        &o,
        || metric(&s, "discus_jobs_deduplicated_total") > before,
    );
    // Give a (wrong) second SR the time to arrive before counting.
    std::thread::sleep(Duration::from_secs(3));
    assert!(metric(&s, "discus_instances_ignored_total") >= 2.0);
    assert_eq!(jobs(&s).len(), 1);
    let series = qido(&o, &sr_series_path);
    assert_eq!(series.len(), 1, "{series:?}\n{}", o.log());
    let instances = qido(
        &o,
        &format!("/dicom-web/studies/{study_uid}/series/{series_uid}/instances"),
    );
    assert_eq!(instances.len(), 1, "{instances:?}");
    let js = jobs(&s);
    let deliveries = js[0]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0]["state"], "delivered");
}
