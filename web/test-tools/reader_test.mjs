// Drives the reading room in headless Debian chromium for crates/discus-serve/tests/reader_browser.rs.
// Usage: node reader_test.mjs BASE_URL TOKEN OUT_DIR ; prints one JSON object with what it saw.
// Parts: the blinded round `first` (pixels, reference lines, a click and keys, submission), the
// AI-assisted round `assisted` (proposal markers, `y` accepts, a click and a grade change one), the
// training round `training` (feedback after submission, not before) and the protocol page.
// The expected reference line is computed here, independently of discus: from the headers as
// cornerstone's DICOM parser read them, with this file's own plane/rectangle intersection.
import puppeteer from 'puppeteer-core';

const [base, token, out] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--window-size=1500,700'],
  defaultViewport: { width: 1500, height: 700 },
});
const result = {};
try {
  const page = await browser.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  const t0 = Date.now();
  await page.goto(`${base}/reader/#token=${token}`);
  await page.waitForFunction(() => window.discus && (window.discus.ready || window.discus.error), { timeout: 60000 });
  result.first_image_ms = Date.now() - t0;
  result.error = await page.evaluate(() => window.discus.error || null);
  result.logs = logs;
  if (result.error) throw new Error(result.error);
  // Wait until the reference lines arrived and were drawn.
  await page.waitForFunction(() => document.querySelector('#refline-sag_t2') && document.querySelector('#refline-sag_t1'), { timeout: 30000 });

  Object.assign(result, await page.evaluate(() => {
    const d = window.discus;
    const { metaData, utilities } = d.cornerstone;
    const vpA = d.viewport('ax_t2');
    const img = vpA.getCornerstoneImage();
    const px = img.getPixelData();
    // Pixel-region checksum of the axial slice shown: sum and sum of squares of rows 8..39, columns 8..39.
    let sum = 0; let sq = 0;
    for (let r = 8; r < 40; r++) for (let c = 8; c < 40; c++) { const v = px[r * img.columns + c]; sum += v; sq += v * v; }
    const plane = (id) => metaData.get('imagePlaneModule', id);
    const expected = (from, onto) => {
      const n = [
        from.rowCosines[1] * from.columnCosines[2] - from.rowCosines[2] * from.columnCosines[1],
        from.rowCosines[2] * from.columnCosines[0] - from.rowCosines[0] * from.columnCosines[2],
        from.rowCosines[0] * from.columnCosines[1] - from.rowCosines[1] * from.columnCosines[0]];
      const world = (x, y) => [0, 1, 2].map((k) => onto.imagePositionPatient[k]
        + onto.rowCosines[k] * x * onto.columnPixelSpacing + onto.columnCosines[k] * y * onto.rowPixelSpacing);
      const dist = (p) => [0, 1, 2].reduce((s, k) => s + (p[k] - from.imagePositionPatient[k]) * n[k], 0);
      const W = onto.columns - 0.5; const H = onto.rows - 0.5;
      const cs = [[-0.5, -0.5], [W, -0.5], [W, H], [-0.5, H]];
      const pts = [];
      for (let i = 0; i < 4; i++) {
        const a = cs[i]; const b = cs[(i + 1) % 4];
        const da = dist(world(...a)); const db = dist(world(...b));
        if ((da > 0) === (db > 0)) continue;
        const t = da / (da - db);
        pts.push([a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]);
      }
      return pts;
    };
    const lines = {};
    for (const role of ['sag_t1', 'sag_t2']) {
      const vp = d.viewport(role);
      const el = document.querySelector(`#refline-${role}`);
      const drawn = [[+el.getAttribute('x1'), +el.getAttribute('y1')], [+el.getAttribute('x2'), +el.getAttribute('y2')]]
        .map((c) => d.canvasToImage(role, c));
      lines[role] = {
        expected: expected(plane(vpA.getCurrentImageId()), plane(vp.getCurrentImageId())),
        api: d.lines[role],
        drawn,
        instance: d.currentInstance(role),
      };
    }
    return {
      study: d.study,
      series: Object.fromEntries(Object.entries(d.series).map(([k, v]) => [k, v && v.series])),
      axial_instance: d.currentInstance('ax_t2'),
      checksum: { rows: img.rows, columns: img.columns, sum, sq },
      lines,
    };
  }));
  await page.screenshot({ path: `${out}/reader-first.png` });

  // A click in the middle of the sagittal T2/STIR view, then keys: level l4_l5 (three times l), grade Moderate (2).
  const box = await (await page.$('#vp-sag_t2')).boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  for (const k of ['l', 'l', 'l', '2']) await page.keyboard.press(k);
  await page.waitForFunction(() => window.discus.reads.length > 0, { timeout: 10000 });
  result.clicked = await page.evaluate(() => ({ point: window.discus.point, saved: window.discus.reads[0] }));
  // The blinded reader's own calls: nothing of other readers before submission.
  result.before_submit = await page.evaluate((s) => window.discus.api(`studies/${s}/reads?round=first`), result.study);
  result.adjudication_as_reader = await page.evaluate(() => window.discus.api('adjudication?round=first').then(() => 'allowed', (e) => e.message));
  await page.keyboard.press('?');
  result.help_protocol_links = await page.evaluate(() => [...document.querySelectorAll('#help a, header a')]
    .map((a) => new URL(a.href).pathname));
  result.proposals_in_blinded_round = await page.evaluate(() => ({
    state: window.discus.proposals.length, drawn: document.querySelectorAll('.proposal').length,
  }));
  await page.screenshot({ path: `${out}/reader-help.png` });
  await page.keyboard.press('?');
  await page.screenshot({ path: `${out}/reader-read.png` });
  // Next study: submits this one.
  const n0 = await page.evaluate(() => window.discus.timings.length);
  await page.keyboard.press('n');
  await page.waitForFunction((n) => window.discus.timings.length > n, { timeout: 60000 }, n0);
  result.next_study_ms = await page.evaluate(() => window.discus.timings[window.discus.timings.length - 1]);
  result.next_study = await page.evaluate(() => window.discus.study);
  result.after_submit = await page.evaluate((s) => window.discus.api(`studies/${s}/reads?round=first`), result.study);

  const open = async (round) => {
    const p = await browser.newPage();
    p.on('console', (m) => logs.push(`${round}: ${m.text()}`));
    p.on('pageerror', (e) => logs.push(`${round}: pageerror: ${e.message}`));
    await p.goto(`${base}/reader/?round=${round}#token=${token}`);
    await p.waitForFunction(() => window.discus && (window.discus.ready || window.discus.error), { timeout: 60000 });
    const err = await p.evaluate(() => window.discus.error || null);
    if (err) throw new Error(`${round}: ${err}`);
    return p;
  };
  const clickCentre = async (p) => {
    const b = await (await p.$('#vp-sag_t2')).boundingBox();
    await p.mouse.click(b.x + b.width / 2, b.y + b.height / 2);
  };
  const nextAndWait = async (p) => {
    const n = await p.evaluate(() => window.discus.timings.length);
    await p.keyboard.press('n');
    await p.waitForFunction((k) => window.discus.timings.length > k, { timeout: 60000 }, n);
  };

  // The AI-assisted round: the proposal of the current finding (spinal canal L1/L2) is drawn on its
  // slice; `y` accepts it; on L2/L3 a click and `3` change the proposal.
  const pa = await open('assisted');
  await pa.waitForFunction(() => document.querySelector('#proposal-sag_t2'), { timeout: 30000 }).catch(async (e) => {
    result.assisted_debug = await pa.evaluate(() => ({ study: window.discus.study, status: document.querySelector('#status').textContent,
      proposals: window.discus.proposals, sag: window.discus.series.sag_t2, inst: window.discus.currentInstance('sag_t2') }));
    throw e;
  });
  result.assisted = await pa.evaluate(() => {
    const d = window.discus;
    const r = document.querySelector('#proposal-sag_t2 rect');
    const centre = [+r.getAttribute('x') + 6, +r.getAttribute('y') + 6];
    return {
      study: d.study, proposals: d.proposals, current: d.currentProposal(),
      instance: d.currentInstance('sag_t2'), series: d.series.sag_t2.series,
      marker: d.canvasToImage('sag_t2', centre),
      footer: document.querySelector('#proposal').textContent,
    };
  });
  await pa.screenshot({ path: `${out}/reader-assisted.png` });
  await pa.keyboard.press('y');
  await pa.waitForFunction(() => window.discus.reads.length > 0, { timeout: 10000 });
  result.assisted.accepted = await pa.evaluate(() => window.discus.reads[0]);
  await pa.keyboard.press('l');
  await clickCentre(pa);
  await pa.keyboard.press('3');
  await pa.waitForFunction(() => window.discus.reads.length > 1, { timeout: 10000 });
  result.assisted.changed = await pa.evaluate(() => ({ saved: window.discus.reads[1], point: window.discus.point }));
  await pa.screenshot({ path: `${out}/reader-assisted-read.png` });
  await nextAndWait(pa);
  result.assisted.next_study = await pa.evaluate(() => window.discus.study);
  await pa.close();

  // The training round: no feedback before submission; after it, the feedback screen.
  const pt = await open('training');
  result.training = { study: await pt.evaluate(() => window.discus.study) };
  await clickCentre(pt);
  for (const k of ['l', 'l', 'l', '2']) await pt.keyboard.press(k);
  await pt.waitForFunction(() => window.discus.reads.length > 0, { timeout: 10000 });
  result.training.read = await pt.evaluate(() => ({ saved: window.discus.reads[0], point: window.discus.point }));
  result.training.before = await pt.evaluate((s) => window.discus.api(`studies/${s}/feedback?round=training`)
    .then((b) => ({ answered: b }), (e) => ({ refused: e.message })), result.training.study);
  result.training.shown_before = await pt.evaluate(() => !document.querySelector('#feedback').hidden);
  await pt.keyboard.press('n');
  await pt.waitForFunction(() => window.discus.feedback && !document.querySelector('#feedback').hidden, { timeout: 30000 });
  Object.assign(result.training, await pt.evaluate(() => ({
    feedback: window.discus.feedback,
    rows: [...document.querySelectorAll('#feedback tr[data-row-id]')].map((tr) => ({
      row_id: tr.dataset.rowId, consensus: tr.querySelector('.consensus-grade').textContent, text: tr.innerText,
    })),
  })));
  await pt.screenshot({ path: `${out}/reader-feedback.png` });
  await nextAndWait(pt);
  result.training.after = await pt.evaluate(() => ({ study: window.discus.study, shown: !document.querySelector('#feedback').hidden }));

  // The protocol page (same tab: the reader's token is in its session storage).
  const tp = Date.now();
  await pt.goto(`${base}/reader/protocol`);
  await pt.waitForFunction(() => [...document.querySelectorAll('img[data-protocol-image]')]
    .every((i) => i.dataset.loaded !== undefined), { timeout: 60000 });
  result.protocol = await pt.evaluate(() => ({
    title: document.querySelector('h1')?.textContent,
    images: [...document.querySelectorAll('img[data-protocol-image]')].map((i) => ({
      file: i.dataset.protocolImage, loaded: i.dataset.loaded, width: i.naturalWidth, height: i.naturalHeight,
    })),
  }));
  result.protocol.ms = Date.now() - tp;
  await pt.screenshot({ path: `${out}/reader-protocol.png`, fullPage: true });
  result.logs = logs;
} catch (e) {
  result.failure = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
