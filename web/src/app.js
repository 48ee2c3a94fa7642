// discus reading room: three viewports (sagittal T1, sagittal T2/STIR, axial T2) on
// @cornerstonejs, pixels by WADO from discus serve, reads saved through the reader API.
// The server decides everything that matters (blinding, geometry); this page draws and sends keys.
import {
  init as csInit, RenderingEngine, Enums, utilities, metaData,
} from '@cornerstonejs/core';
import { init as dicomInit } from '@cornerstonejs/dicom-image-loader';
import {
  init as toolsInit, addTool, ToolGroupManager, StackScrollTool, ZoomTool, WindowLevelTool,
  Enums as ToolEnums,
} from '@cornerstonejs/tools';

const API = new URL('api/', location.href).href;
const ROLES = ['sag_t1', 'sag_t2', 'ax_t2'];
const LEVELS = ['l1_l2', 'l2_l3', 'l3_l4', 'l4_l5', 'l5_s1'];
const GROUPS = ['spinal_canal_stenosis', 'neural_foraminal_narrowing', 'subarticular_stenosis'];
const GRADES = { 1: 'Normal/Mild', 2: 'Moderate', 3: 'Severe' };
const PRESETS = [null, { lower: 0, upper: 600 }, { lower: 200, upper: 1400 }];

const state = {
  token: sessionStorage.getItem('discus-token') || '',
  session: null, round: null, study: null, series: {}, point: null,
  level: 0, group: 0, side: 'left', preset: 0, reads: [], shownAt: null, timings: [],
  proposals: [], outcomes: {}, feedback: null,
};
window.discus = state; // for tests and the curious: the page's whole state
state.cornerstone = { metaData, utilities };

function $(id) { return document.getElementById(id); }
function setStatus(s) { $('status').textContent = s; }

async function api(path, opts = {}) {
  const r = await fetch(API + path, {
    ...opts,
    headers: { Authorization: `Bearer ${state.token}`, 'Content-Type': 'application/json', ...(opts.headers || {}) },
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${r.status} ${path}`);
  return body;
}
state.api = api;

function condition() {
  const g = GROUPS[state.group];
  return g === 'spinal_canal_stenosis' ? g : `${state.side}_${g}`;
}
// The round as a query string: the server checks the reader reads in it.
function rq() { return `round=${encodeURIComponent(state.round.name)}`; }

// The AI proposal (AI-assisted rounds only; the server returns none in a blinded round) of the
// current finding.
function currentProposal() {
  return state.proposals.find((p) => p.condition === condition() && p.level === LEVELS[state.level]) || null;
}
state.currentProposal = currentProposal;

function showCurrent() {
  const p = state.point;
  $('current').textContent = `${condition()} ${LEVELS[state.level]} ` +
    (p ? `point series ${p.series} #${p.instance} (${p.x.toFixed(1)}, ${p.y.toFixed(1)})` : 'no point');
  $('reads').textContent = ` | ${state.reads.length} read(s) saved in this study`;
  const prop = currentProposal();
  const outcome = state.outcomes[`${condition()} ${LEVELS[state.level]}`];
  $('proposal').textContent = state.round?.ai_assisted
    ? (prop ? ` | AI proposes ${prop.grade}${prop.point ? ` at #${prop.point.instance}` : ' (no point)'}` +
      (outcome ? ` (${outcome})` : ' (y accepts)') : ' | no AI proposal for this finding')
    : '';
}

// Shows the current finding's proposal: the view holding its series scrolls to its slice.
function showProposal() {
  const p = currentProposal();
  if (!p || !p.point) { ROLES.forEach(drawOverlay); return; }
  const role = ROLES.find((r) => state.series[r] && state.series[r].series === p.point.series);
  if (!role) return;
  const i = state.series[role].instances.indexOf(p.point.instance);
  if (i >= 0 && i !== viewport(role).getCurrentImageIdIndex()) viewport(role).setImageIdIndex(i);
  ROLES.forEach(drawOverlay);
}

let engine; let toolGroup;
async function setup() {
  await csInit();
  dicomInit({
    maxWebWorkers: 1,
    beforeSend: () => ({ Authorization: `Bearer ${state.token}` }),
    decodeConfig: { wasmBasePath: new URL('.', location.href).href },
  });
  toolsInit();
  [StackScrollTool, ZoomTool, WindowLevelTool].forEach(addTool);
  engine = new RenderingEngine('discus');
  toolGroup = ToolGroupManager.createToolGroup('reader');
  toolGroup.addTool(StackScrollTool.toolName);
  toolGroup.addTool(ZoomTool.toolName);
  toolGroup.addTool(WindowLevelTool.toolName);
  const B = ToolEnums.MouseBindings;
  toolGroup.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: B.Primary }] });
  toolGroup.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: B.Secondary }] });
  toolGroup.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: B.Wheel }] });
  for (const role of ROLES) {
    const element = $(`vp-${role}`);
    element.oncontextmenu = (e) => e.preventDefault();
    engine.enableElement({ viewportId: role, type: Enums.ViewportType.STACK, element });
    toolGroup.addViewport(role, 'discus');
    element.addEventListener(Enums.Events.STACK_NEW_IMAGE, () => onSlice(role));
    element.addEventListener(Enums.Events.IMAGE_RENDERED, () => drawOverlay(role));
    // A click (press and release without moving) sets the point; a drag is window/level.
    let down = null;
    element.addEventListener('pointerdown', (e) => { down = [e.clientX, e.clientY]; }, true);
    element.addEventListener('pointerup', (e) => {
      if (down && e.button === 0 && Math.hypot(e.clientX - down[0], e.clientY - down[1]) < 3) {
        const rect = element.getBoundingClientRect();
        setPoint(role, [e.clientX - rect.left, e.clientY - rect.top]);
      }
      down = null;
    }, true);
    element.addEventListener('mouseenter', () => { state.hover = role; });
  }
}

function viewport(role) { return engine.getViewport(role); }
state.viewport = (role) => viewport(role);

// Canvas (CSS pixels) -> image pixel (column, row) of the slice shown.
function canvasToImage(role, xy) {
  const vp = viewport(role);
  const world = vp.canvasToWorld(xy);
  return utilities.worldToImageCoords(vp.getCurrentImageId(), world);
}
function imageToCanvas(role, xy) {
  const vp = viewport(role);
  const world = utilities.imageToWorldCoords(vp.getCurrentImageId(), xy);
  return vp.worldToCanvas(world);
}
state.imageToCanvas = imageToCanvas;
state.canvasToImage = canvasToImage;

function currentInstance(role) {
  const s = state.series[role];
  return s ? s.instances[viewport(role).getCurrentImageIdIndex()] : null;
}
state.currentInstance = currentInstance;

function setPoint(role, canvasXY) {
  const s = state.series[role];
  if (!s) return;
  const [x, y] = canvasToImage(role, canvasXY);
  state.point = { role, series: s.series, instance: currentInstance(role), x, y };
  ROLES.forEach(drawOverlay);
  showCurrent();
}
state.setPoint = setPoint;

// The reference line of the axial slice on both sagittal views: end points come from the server
// (discus's geometry), in each sagittal image's pixel coordinates.
state.lines = {};
async function onSlice(role) {
  if (role === 'ax_t2') {
    await Promise.all(['sag_t1', 'sag_t2'].map(refreshLine));
  } else {
    await refreshLine(role);
  }
}
async function refreshLine(role) {
  const ax = state.series.ax_t2; const sag = state.series[role];
  if (!ax || !sag || !state.study) return;
  const q = new URLSearchParams({
    from_series: ax.series, from_instance: currentInstance('ax_t2'),
    onto_series: sag.series, onto_instance: currentInstance(role),
  });
  const r = await api(`studies/${state.study}/refline?${q}`);
  state.lines[role] = r.line;
  drawOverlay(role);
}
state.refreshLine = refreshLine;

function drawOverlay(role) {
  const svg = $(`ov-${role}`);
  if (!svg || !engine || !state.series[role]) return;
  let html = '';
  const line = state.lines[role];
  if (line) {
    const a = imageToCanvas(role, line[0]); const b = imageToCanvas(role, line[1]);
    html += `<line id="refline-${role}" x1="${a[0]}" y1="${a[1]}" x2="${b[0]}" y2="${b[1]}" stroke="#0f0" stroke-width="1"/>`;
  }
  // AI proposals on this slice: dashed cyan squares with the proposed grade, the current finding's
  // thicker; the reader's own point is the magenta circle.
  const cur = currentProposal();
  for (const q of state.proposals) {
    const pt = q.point;
    if (!pt || pt.series !== state.series[role].series || pt.instance !== currentInstance(role)) continue;
    const c = imageToCanvas(role, [pt.x, pt.y]);
    const mine = q === cur;
    html += `<g ${mine ? `id="proposal-${role}"` : ''} class="proposal"><rect x="${c[0] - 6}" y="${c[1] - 6}" width="12" height="12" ` +
      `stroke="#0ff" fill="none" stroke-dasharray="3 2" stroke-width="${mine ? 2 : 1}"/>` +
      `<text x="${c[0] + 9}" y="${c[1] + 4}" fill="#0ff" font-size="11">AI ${q.grade}${mine ? '' : ` ${q.level}`}</text></g>`;
  }
  const p = state.point;
  if (p && p.series === state.series[role].series && p.instance === currentInstance(role)) {
    const c = imageToCanvas(role, [p.x, p.y]);
    html += `<circle cx="${c[0]}" cy="${c[1]}" r="5" stroke="#f0f" fill="none" stroke-width="2"/>`;
  }
  svg.innerHTML = html;
}

async function loadStudy(next) {
  state.study = next.study; state.series = {}; state.point = null; state.lines = {}; state.reads = [];
  state.proposals = []; state.outcomes = {};
  $('study').textContent = next.study ? `study ${next.study} (round ${state.round.name})` : 'no study left';
  if (!next.study) return;
  const jobs = [];
  for (const role of ROLES) {
    const s = next.series[role];
    const vp = viewport(role);
    if (!s) { state.series[role] = null; continue; }
    state.series[role] = s;
    const ids = s.instances.map((n) =>
      `wadouri:${API}studies/${next.study}/series/${s.series}/instances/${n}`);
    jobs.push(vp.setStack(ids, Math.floor(ids.length / 2)).then(() => vp.render()));
  }
  await Promise.all(jobs);
  await onSlice('ax_t2');
  const own = await api(`studies/${state.study}/reads?${rq()}`);
  state.reads = own.own;
  if (state.round.ai_assisted) {
    state.proposals = (await api(`studies/${state.study}/proposals?${rq()}`)).proposals;
    showProposal();
  }
  state.shownAt = performance.now();
  showCurrent();
}

// Training rounds: after submission, the reader's grade and point against the consensus, per finding.
function showFeedback(fb) {
  const mm = (v) => (v == null ? '-' : `${v.toFixed(1)} mm`);
  const pt = (p) => (p ? `#${p.instance} (${p.x.toFixed(0)}, ${p.y.toFixed(0)})` : '-');
  $('feedback').innerHTML = `<h2>Feedback on study ${fb.study} (consensus of round ${fb.reference_round})</h2>` +
    `<p>${fb.agreeing} of ${fb.compared} graded findings agree with the consensus; ${fb.missed} consensus finding(s) not graded; ` +
    `median point distance ${mm(fb.median_mm)}.</p><table><tr><th>finding</th><th>your grade</th><th>consensus</th>` +
    '<th>your point</th><th>consensus point</th><th>distance</th><th></th></tr>' +
    fb.findings.map((f) => {
      const agree = f.grade != null && f.grade === f.consensus_grade;
      return `<tr class="${agree ? 'agree' : 'differ'}" data-row-id="${f.row_id}"><td>${f.condition} ${f.level}</td><td>${f.grade ?? '-'}</td>` +
        `<td class="consensus-grade">${f.consensus_grade ?? '-'}</td><td>${pt(f.point)}</td><td>${pt(f.consensus_point)}</td>` +
        `<td>${mm(f.distance_mm)}</td><td>${agree ? '&#10003; agrees' : '&#10007; differs'}</td></tr>`;
    }).join('') + '</table><p>press <kbd>n</kbd> for the next study</p>';
  $('feedback').hidden = false;
  state.feedback = fb;
}

async function nextStudy(submitFirst) {
  const t0 = performance.now();
  if (state.feedback) { $('feedback').hidden = true; state.feedback = null; submitFirst = false; }
  if (submitFirst && state.study) {
    const done = await api(`studies/${state.study}/submit?${rq()}`, { method: 'POST' });
    if (done.feedback) { showFeedback(done.feedback); setStatus('submitted: feedback'); return; }
  }
  const next = await api(`next?${rq()}`);
  await loadStudy(next);
  state.timings.push(performance.now() - t0);
  setStatus(`ready (${Math.round(performance.now() - t0)} ms)`);
}
state.nextStudy = nextStudy;

async function grade(key) {
  const p = state.point;
  if (!p) { setStatus('click the finding first'); return; }
  const read = {
    study: state.study, series: p.series, instance: p.instance,
    x: p.x, y: p.y, condition: condition(), level: LEVELS[state.level], grade: GRADES[key],
  };
  const saved = await api(`reads?${rq()}`, { method: 'POST', body: JSON.stringify(read) });
  state.reads.push(saved);
  if (saved.proposal_outcome) state.outcomes[`${read.condition} ${read.level}`] = saved.proposal_outcome;
  setStatus(`saved ${read.condition} ${read.level} ${read.grade}${saved.proposal_outcome ? ` (AI proposal ${saved.proposal_outcome})` : ''}`);
  showCurrent();
}

// AI-assisted rounds: the current finding's proposal becomes the reader's read, as proposed.
async function acceptProposal() {
  const prop = currentProposal();
  if (!prop) { setStatus('no AI proposal for this finding'); return; }
  const body = { study: state.study, condition: prop.condition, level: prop.level };
  const saved = await api(`proposals/accept?${rq()}`, { method: 'POST', body: JSON.stringify(body) });
  state.reads.push(saved);
  state.outcomes[`${prop.condition} ${prop.level}`] = saved.proposal_outcome;
  setStatus(`accepted the AI proposal: ${prop.condition} ${prop.level} ${prop.grade}`);
  showCurrent();
}

async function showAdjudication() {
  const box = $('adjudication');
  if (!box.hidden) { box.hidden = true; return; }
  const r = await api(`adjudication?${rq()}`);
  box.innerHTML = `<h2>Disagreements (${r.items.length})</h2>` + r.items.map((d) =>
    `<p><b>${d.row_id}</b> ${d.reason}; ${d.max_distance_mm == null ? '' : d.max_distance_mm.toFixed(1) + ' mm'}<br>` +
    d.reads.map((x) => `${x.reader}: ${x.grade ?? '-'} ${x.point ? `#${x.point.instance} (${x.point.x.toFixed(0)}, ${x.point.y.toFixed(0)})` : ''}`).join('; ') +
    '</p>').join('');
  box.hidden = false;
}

function cyclePreset() {
  state.preset = (state.preset + 1) % PRESETS.length;
  for (const role of ROLES) {
    if (!state.series[role]) continue;
    const vp = viewport(role);
    if (PRESETS[state.preset]) vp.setProperties({ voiRange: PRESETS[state.preset] }); else vp.resetProperties();
    vp.render();
  }
}

function scroll(delta) {
  const role = state.hover || 'ax_t2';
  const vp = viewport(role);
  const n = state.series[role]?.instances.length || 0;
  const i = Math.max(0, Math.min(n - 1, vp.getCurrentImageIdIndex() + delta));
  vp.setImageIdIndex(i);
}

document.addEventListener('keydown', async (e) => {
  if (e.target.tagName === 'INPUT') return;
  try {
    if (e.key === '?') { $('help').hidden = !$('help').hidden; return; }
    if (state.feedback && e.key !== 'n') return;
    if (e.key in GRADES) await grade(e.key);
    else if (e.key === 'l') { state.level = (state.level + 1) % LEVELS.length; showProposal(); }
    else if (e.key === 'L') { state.level = (state.level + LEVELS.length - 1) % LEVELS.length; showProposal(); }
    else if (e.key === 'c') { state.group = (state.group + 1) % GROUPS.length; showProposal(); }
    else if (e.key === 's') { state.side = state.side === 'left' ? 'right' : 'left'; showProposal(); }
    else if (e.key === 'y') await acceptProposal();
    else if (e.key === 'n') await nextStudy(true);
    else if (e.key === 'w') cyclePreset();
    else if (e.key === 'r') ROLES.forEach((r) => { if (state.series[r]) { viewport(r).resetCamera(); viewport(r).resetProperties(); viewport(r).render(); } });
    else if (e.key === 'a') await showAdjudication();
    else if (e.key === 'PageUp') scroll(-1);
    else if (e.key === 'PageDown') scroll(1);
    showCurrent();
  } catch (err) { setStatus(`error: ${err.message}`); }
});

async function start() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) { state.token = fromHash; sessionStorage.setItem('discus-token', fromHash); history.replaceState(null, '', location.pathname + location.search); }
  if (!state.token) {
    $('login').hidden = false;
    $('login-form').onsubmit = (e) => {
      e.preventDefault(); sessionStorage.setItem('discus-token', $('token').value); location.reload();
    };
    return;
  }
  state.session = await api('session');
  const wanted = new URLSearchParams(location.search).get('round');
  state.round = state.session.rounds.find((r) => r.name === wanted) || state.session.rounds[0];
  const kind = state.round?.kind === 'training' ? ' (training round)' : '';
  $('who').textContent = `${state.session.reader}${state.round?.ai_assisted ? ' (AI-assisted round)' : ''}${kind}`;
  await setup();
  await nextStudy(false);
  state.ready = true;
}
start().catch((e) => { setStatus(`error: ${e.message}`); state.error = e.message; });
