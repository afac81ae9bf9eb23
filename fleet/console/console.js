// The operator console: login, a live canvas map fed incrementally over a WebSocket,
// panels for robots, stations, orders, tasks, alarms and KPIs (with small SVG charts of the
// service's KPI history), and the operator actions the role allows.
// Plain modern JS, no build step. The map's static layer (cells by kind) is drawn once
// into an offscreen canvas; each frame blits it and draws shelves and robots on top, so
// 1,000 robots cost a few thousand fillRect calls, not a DOM node each.

const KIND_COLOUR = { '.': '#f8fafc', S: '#dfe4ea', W: '#fcd34d', Q: '#fef3c7', C: '#86efac', P: '#c7d2fe', K: '#f9a8d4', '#': '#4b5563' };
const KIND_NAME = { '.': 'aisle', S: 'storage', W: 'working', Q: 'queue', C: 'charger', P: 'parking', K: 'packing', '#': 'blocked' };
const STATE_COLOUR = { idle: '#6b7280', driving: '#2563eb', acting: '#7c3aed', charging: '#16a34a', paused: '#f59e0b',
  out_of_service: '#a8a29e', error: '#dc2626', offline: '#111827' };
const HEADING = [[1, 0], [0, -1], [-1, 0], [0, 1]]; // east, north, west, south; canvas y grows south
const CELL_PX = 8; // resolution of the static layer

import { api, mayOperate, session, showLogin, start } from './session.js';

const $ = (id) => document.getElementById(id);
// Robot ids and alarm texts come from robots and the wire: never trust them as HTML.
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const state = {
  map: null, robots: new Map(), shelves: new Map(), errors: new Map(),
  held: new Map(), blocked: [], alarms: [], flags: {}, selected: null, t: 0, updates: 0, socket: null,
  shelf: null, shelfHome: null, picking: false, // the selected shelf, its home, picking a move's target
  view: { scale: 8, ox: 0, oy: 0 }, staticLayer: null, drawMs: [], dirty: true, panelDue: 0, interval: 250,
};
window.fleetConsole = state; // for the browser tests and for curious operators

Object.defineProperty(state, 'token', { get: () => session.token }); // the tests read it
Object.defineProperty(state, 'me', { get: () => session.me });

// --- HTTP ------------------------------------------------------------------------------------
function say(text, isError = false) {
  const el = $('message');
  el.textContent = text;
  el.style.color = isError ? '#b91c1c' : '';
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { el.textContent = ''; }, 4000);
}

async function action(path, label, body) {
  try {
    await api(path, { method: 'POST', ...(body ? { body: JSON.stringify(body) } : {}) }); say(label); return true;
  } catch (err) { say(err.message, true); return false; }
}

// --- login -----------------------------------------------------------------------------------
session.onLogout = () => { if (state.socket) { state.socket.onclose = null; state.socket.close(); state.socket = null; } };

async function enter() {
  state.map = await api('/api/map');
  $('map-name').textContent = `map ${state.map.name} ${state.map.width}×${state.map.height}`;
  const operate = mayOperate();
  document.querySelectorAll('button.operator').forEach((b) => { b.hidden = !operate; b.disabled = !operate; });
  document.querySelectorAll('.operator-only').forEach((e) => { e.hidden = !operate; });
  buildStaticLayer(); fit(); legend(); connect(); refreshPanels();
}

// --- live feed -------------------------------------------------------------------------------
function connect() {
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/live`);
  state.socket = socket;
  socket.onopen = () => { socket.send(JSON.stringify({ token: state.token })); watch(); };
  socket.onmessage = (event) => apply(JSON.parse(event.data));
  socket.onclose = (event) => {
    if (event.code === 4401) { showLogin('Your session ended: log in again.'); return; }
    say('live feed lost: reconnecting', true);
    setTimeout(() => { if (session.token) connect(); }, 1000);
  };
}

function watch() {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify({ watch: state.selected }));
}

function apply(msg) {
  const now = performance.now();
  state.t = msg.t; state.updates += 1;
  if (msg.robots) {
    for (const [id, [x, y, h, st, charge, shelf, errand]] of Object.entries(msg.robots)) {
      const r = state.robots.get(id);
      if (r) { const p = position(r, now); Object.assign(r, { fx: p[0], fy: p[1], t0: now, x, y, h, state: st, charge, shelf, errand }); }
      else state.robots.set(id, { id, x, y, h, state: st, charge, shelf, errand, fx: x, fy: y, t0: now });
    }
  }
  if (msg.shelves) for (const [id, where] of Object.entries(msg.shelves)) state.shelves.set(id, where);
  if (msg.held_reset) state.held.clear();
  if (msg.held) for (const [id, cells] of Object.entries(msg.held)) state.held.set(id, cells);
  if (msg.blocked) state.blocked = msg.blocked;
  if (msg.errors) state.errors = new Map(Object.entries(msg.errors));
  if (msg.alarms) { state.alarms = msg.alarms; renderAlarms(); }
  if (msg.flags) {
    state.flags = msg.flags;
    $('fleet-flags').textContent = [msg.flags.emergency_stop && 'EMERGENCY STOP', msg.flags.paused_all && 'FLEET PAUSED'].filter(Boolean).join(' · ');
  }
  $('clock').textContent = `t = ${Math.floor(msg.t)} s`;
  state.dirty = true;
}

// A robot glides from where it was drawn to its reported cell over one update interval.
function position(r, now) {
  const k = Math.min(1, (now - r.t0) / state.interval);
  return [r.fx + (r.x - r.fx) * k, r.fy + (r.y - r.fy) * k];
}

// --- drawing ---------------------------------------------------------------------------------
const canvas = $('map');
const ctx = canvas.getContext('2d');

function buildStaticLayer() {
  const { width, height, layout } = state.map;
  const layer = document.createElement('canvas');
  layer.width = width * CELL_PX; layer.height = height * CELL_PX;
  const g = layer.getContext('2d');
  for (let y = 0; y < height; y++) {
    const row = layout[y];
    for (let x = 0; x < width; x++) {
      g.fillStyle = KIND_COLOUR[row[x]] ?? '#fff';
      g.fillRect(x * CELL_PX, y * CELL_PX, CELL_PX - 1, CELL_PX - 1);
    }
  }
  g.fillStyle = '#065f46'; // a charger's contact plate: a bar across the cell
  for (const c of state.map.chargers) g.fillRect(c.x * CELL_PX + 1, c.y * CELL_PX + CELL_PX / 2 - 1, CELL_PX - 3, 2);
  state.staticLayer = layer;
}

function fit() {
  const rect = canvas.getBoundingClientRect();
  const scale = Math.min(rect.width / state.map.width, rect.height / state.map.height) * 0.97;
  state.view = { scale, ox: (rect.width - state.map.width * scale) / 2, oy: (rect.height - state.map.height * scale) / 2 };
  state.dirty = true;
}

function legend() {
  const states = Object.entries(STATE_COLOUR).map(([s, c]) => `<span><i style="background:${c}"></i>${s.replace(/_/g, ' ')}</span>`);
  const kinds = Object.entries(KIND_COLOUR).filter(([k]) => k !== '.').map(([k, c]) => `<span><i style="background:${c};border-radius:0"></i>${KIND_NAME[k]}</span>`);
  $('legend').innerHTML = [...states, ...kinds].join('');
}

function draw(now) {
  const dpr = window.devicePixelRatio || 1;
  const rect = canvas.getBoundingClientRect();
  if (canvas.width !== Math.round(rect.width * dpr) || canvas.height !== Math.round(rect.height * dpr)) {
    canvas.width = Math.round(rect.width * dpr); canvas.height = Math.round(rect.height * dpr);
  }
  const { scale, ox, oy } = state.view;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, rect.width, rect.height);
  ctx.setTransform(dpr * scale, 0, 0, dpr * scale, dpr * ox, dpr * oy); // one unit = one cell
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(state.staticLayer, 0, 0, state.map.width, state.map.height);
  ctx.fillStyle = 'rgba(17,24,39,.85)';
  for (const [x, y] of state.blocked) { ctx.fillRect(x, y, 1, 1); }
  ctx.fillStyle = 'rgba(37,99,235,.28)';
  for (const cells of state.held.values()) for (const [x, y] of cells) ctx.fillRect(x + 0.05, y + 0.05, 0.9, 0.9);
  ctx.fillStyle = '#a16207';
  for (const where of state.shelves.values()) if (Array.isArray(where)) ctx.fillRect(where[0] + 0.2, where[1] + 0.2, 0.6, 0.6);
  const shelfAt = state.shelves.get(state.shelf);
  if (Array.isArray(shelfAt)) { ctx.strokeStyle = '#f43f5e'; ctx.lineWidth = 0.1; ctx.strokeRect(shelfAt[0] + 0.1, shelfAt[1] + 0.1, 0.8, 0.8); }
  let moving = false;
  const detail = scale >= 10;
  for (const r of state.robots.values()) {
    const [x, y] = position(r, now);
    if (x !== r.x || y !== r.y) moving = true;
    const cx = x + 0.5, cy = y + 0.5;
    ctx.fillStyle = STATE_COLOUR[r.state] ?? '#000';
    ctx.beginPath(); ctx.arc(cx, cy, 0.42, 0, Math.PI * 2); ctx.fill();
    if (r.shelf) { ctx.strokeStyle = '#a16207'; ctx.lineWidth = 0.16; ctx.strokeRect(x + 0.14, y + 0.14, 0.72, 0.72); }
    const [dx, dy] = HEADING[r.h] ?? [0, 0];
    ctx.strokeStyle = '#fff'; ctx.lineWidth = 0.12;
    ctx.beginPath(); ctx.moveTo(cx, cy); ctx.lineTo(cx + dx * 0.4, cy + dy * 0.4); ctx.stroke();
    if (detail) { // battery bar under the robot
      ctx.fillStyle = '#111827'; ctx.fillRect(x + 0.1, y + 0.9, 0.8, 0.08);
      ctx.fillStyle = r.charge > 30 ? '#22c55e' : r.charge > 15 ? '#f59e0b' : '#dc2626';
      ctx.fillRect(x + 0.1, y + 0.9, 0.8 * r.charge / 100, 0.08);
    }
    if (r.id === state.selected) { ctx.strokeStyle = '#f43f5e'; ctx.lineWidth = 0.12; ctx.beginPath(); ctx.arc(cx, cy, 0.62, 0, Math.PI * 2); ctx.stroke(); }
  }
  return moving;
}

function frame(now) {
  if (state.map && !$('app').hidden && (state.dirty || state.moving)) {
    state.dirty = false;
    const started = performance.now();
    state.moving = draw(now);
    state.drawMs.push(performance.now() - started); // the benchmark reads this
    if (state.drawMs.length > 600) state.drawMs.splice(0, 300);
  }
  if (state.map && now >= state.panelDue) { state.panelDue = now + 500; renderRobots(); renderSelected(); renderShelf(); }
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

// --- zoom, pan, select -----------------------------------------------------------------------
canvas.addEventListener('wheel', (event) => {
  event.preventDefault();
  const rect = canvas.getBoundingClientRect();
  const mx = event.clientX - rect.left, my = event.clientY - rect.top;
  const v = state.view, factor = Math.exp(-event.deltaY * 0.0015);
  const scale = Math.min(80, Math.max(1, v.scale * factor));
  v.ox = mx - (mx - v.ox) * (scale / v.scale); v.oy = my - (my - v.oy) * (scale / v.scale); v.scale = scale;
  state.dirty = true;
}, { passive: false });

let drag = null;
canvas.addEventListener('pointerdown', (event) => { drag = { x: event.clientX, y: event.clientY, moved: false }; canvas.setPointerCapture(event.pointerId); });
canvas.addEventListener('pointermove', (event) => {
  if (!drag) return;
  const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
  if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
  if (drag.moved) { state.view.ox += dx; state.view.oy += dy; drag.x = event.clientX; drag.y = event.clientY; state.dirty = true; }
});
canvas.addEventListener('pointerup', (event) => {
  if (drag && !drag.moved) {
    const rect = canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left - state.view.ox) / state.view.scale, y = (event.clientY - rect.top - state.view.oy) / state.view.scale;
    if (state.picking) { pickTarget(Math.floor(x), Math.floor(y)); drag = null; return; }
    let best = null, bestD = 1.0;
    for (const r of state.robots.values()) { const d = Math.hypot(r.x + 0.5 - x, r.y + 0.5 - y); if (d < bestD) { best = r.id; bestD = d; } }
    if (best === null) selectShelf(shelfOn(Math.floor(x), Math.floor(y)));
    else select(best);
  }
  drag = null;
});
window.addEventListener('resize', () => { state.dirty = true; });
canvas.addEventListener('dblclick', fit);

function select(id) {
  state.selected = id; state.held.clear(); watch(); state.dirty = true; state.panelDue = 0;
  if (id !== null) selectShelf(null);
}

// A click on a cell where a shelf stands (and no robot) selects the shelf.
function shelfOn(x, y) {
  for (const [id, where] of state.shelves) if (Array.isArray(where) && where[0] === x && where[1] === y) return id;
  return null;
}

async function selectShelf(id) {
  state.shelf = id; state.shelfHome = null; state.dirty = true; setPicking(false); renderShelf();
  if (id === null) return;
  if (state.selected !== null) select(null);
  try { state.shelfHome = (await api(`/api/shelves/${encodeURIComponent(id)}`)).home; } catch (err) { say(err.message, true); }
  renderShelf();
}

function renderShelf() {
  const where = state.shelves.get(state.shelf);
  $('shelf-selected').hidden = where === undefined;
  if (where === undefined) return;
  $('shelf-id').textContent = state.shelf;
  const home = state.shelfHome;
  const facts = { at: Array.isArray(where) ? `(${where[0]}, ${where[1]})` : `on robot ${where}`,
    home: home ? `(${home.x}, ${home.y})` : '—' };
  $('shelf-facts').innerHTML = Object.entries(facts).map(([k, v]) => `<dt>${k}</dt><dd data-fact="${k}">${esc(v)}</dd>`).join('');
}

function setPicking(on) {
  state.picking = on;
  canvas.style.cursor = on ? 'crosshair' : '';
}

function pickTarget(x, y) {
  $('shelf-target').value = `${x},${y}`;
  setPicking(false);
}

async function moveShelf() {
  const m = /^\s*(-?\d+)\s*[, ]\s*(-?\d+)\s*$/.exec($('shelf-target').value);
  if (!m) { say('type the target cell as x,y or pick it on the map', true); return; }
  const id = state.shelf, x = Number(m[1]), y = Number(m[2]);
  if (await action(`/api/shelves/${encodeURIComponent(id)}/move`, `shelf ${id} moves to (${x}, ${y})`, { x, y }) && state.shelf === id) {
    state.shelfHome = { x, y }; renderShelf();
  }
}

// --- panels ----------------------------------------------------------------------------------
const MAX_ROWS = 200; // a 1,000-robot fleet is filtered, not scrolled through
function renderRobots() {
  const text = $('robot-filter').value.trim().toLowerCase(), wanted = $('state-filter').value;
  const maxCharge = $('charge-filter').value === '' ? 101 : Number($('charge-filter').value);
  const onlyErrors = $('error-filter').checked;
  const rows = [];
  for (const r of state.robots.values()) {
    if ((text && !r.id.toLowerCase().includes(text)) || (wanted && r.state !== wanted) || r.charge > maxCharge ||
        (onlyErrors && !state.errors.has(r.id))) continue;
    rows.push(r);
  }
  rows.sort((a, b) => a.id.localeCompare(b.id));
  $('robot-count').textContent = `${rows.length} of ${state.robots.size}`;
  $('robots').tBodies[0].innerHTML = rows.slice(0, MAX_ROWS).map((r) =>
    `<tr data-id="${esc(r.id)}" class="${r.id === state.selected ? 'sel' : ''}"><td>${esc(r.id)}</td>` +
    `<td><span class="state" style="background:${STATE_COLOUR[r.state]}"></span>${r.state.replace(/_/g, ' ')}${errorMark(r.id)}</td>` +
    `<td>${r.charge}%</td><td>${esc(r.shelf)}</td></tr>`).join('');
}
// A robot's error codes, worst first, as a mark after its state (all of them on hover).
function errorMark(id) {
  const errors = state.errors.get(id);
  if (!errors) return '';
  const codes = Object.entries(errors).sort(([, a], [, b]) => (b === 'fatal') - (a === 'fatal'));
  const text = codes.map(([code, severity]) => `${code} (${severity})`).join(', ');
  return ` <span class="err sev-${esc(codes[0][1])}" title="${esc(text)}">⚠ ${esc(codes[0][0])}${codes.length > 1 ? ` +${codes.length - 1}` : ''}</span>`;
}
$('robots').tBodies[0].addEventListener('click', (event) => { const tr = event.target.closest('tr'); if (tr) select(tr.dataset.id); });
for (const id of ['robot-filter', 'state-filter', 'charge-filter', 'error-filter']) $(id).addEventListener('input', () => { state.panelDue = 0; });

function renderSelected() {
  const r = state.robots.get(state.selected);
  $('selected').hidden = !r;
  if (!r) return;
  $('sel-id').textContent = r.id;
  const held = state.held.get(r.id) ?? [];
  const facts = { state: r.state, cell: `(${r.x}, ${r.y})`, heading: ['east', 'north', 'west', 'south'][r.h], battery: `${r.charge}%`,
    shelf: r.shelf ?? '—', errand: r.errand ?? '—',
    errors: Object.entries(state.errors.get(r.id) ?? {}).map(([code, severity]) => `${code} (${severity})`).join(', ') || '—',
    reserved: held.map(([x, y]) => `(${x},${y})`).join(' ') || '—' };
  $('sel-facts').innerHTML = Object.entries(facts).map(([k, v]) => `<dt>${k}</dt><dd data-fact="${k}">${esc(v)}</dd>`).join('');
}

// Stations, orders, tasks and KPIs come over REST every PANEL_MS (they change at the pace
// of people and shelves, not of robot reports).
const PANEL_MS = 2000;
async function refreshPanels() {
  if ($('app').hidden) return;
  const status = $('order-status').value;
  try {
    const last = kpiHistory.t.length ? kpiHistory.t[kpiHistory.t.length - 1] : null;
    const [stations, orders, tasks, kpis, samples] = await Promise.all([api('/api/stations'),
      api(`/api/orders?limit=50${status ? `&status=${status}` : ''}`), api('/api/tasks?limit=30'), api('/api/kpis'),
      api(`/api/kpis/history?window_s=${LINES_WINDOW_S}${last === null ? '' : `&since=${last}`}`)]);
    renderStations(stations); renderOrders(orders); renderTasks(tasks); renderKpis(kpis);
    if (mergeHistory(samples)) renderCharts();
  } catch (err) { say(err.message, true); }
  clearTimeout(refreshPanels.timer);
  refreshPanels.timer = setTimeout(refreshPanels, PANEL_MS);
}
$('order-status').addEventListener('change', refreshPanels);

function renderStations(stations) {
  $('stations').innerHTML = stations.map((s) => {
    const t = s.terminal, lit = t.lit;
    const doing = !t.shelf ? 'no shelf' : lit ? `${esc(t.shelf)}: ${lit.quantity} × ${esc(lit.sku)} ${t.kind === 'pick' ? 'from' : 'into'} ${esc(lit.bin)} (${t.done}/${t.total})` : `${esc(t.shelf)} leaving`;
    return `<li data-station="${esc(s.id)}"><strong>${esc(s.id)}</strong> ${s.kind} · ${t.manned ? 'person' : 'simulated'} · ` +
      `queue ${t.queue.length ? esc(t.queue.join(', ')) : 'empty'}<br><span class="muted">${doing}</span> ` +
      `<a href="terminal.html?station=${encodeURIComponent(s.id)}" target="_blank">terminal</a></li>`;
  }).join('');
}

function renderOrders(orders) {
  const operate = mayOperate();
  $('orders').tBodies[0].innerHTML = orders.map((o) => {
    const units = o.lines.reduce((n, l) => n + l.quantity, 0), picked = o.lines.reduce((n, l) => n + l.picked, 0);
    const customer = o.customer ? `<span title="${esc(o.customer.address)}">${esc(o.customer.name)}</span>` : '';  // null for a viewer
    return `<tr data-order="${esc(o.id)}"><td>${esc(o.id)}</td><td>${customer}</td><td>${o.status}</td><td>${o.lines.length}</td><td>${picked}/${units}</td>` +
      `<td>${operate && o.status === 'pending' ? `<button data-cancel="${esc(o.id)}">Cancel</button>` : ''}</td></tr>`;
  }).join('');
}
$('orders').addEventListener('click', async (event) => {
  const id = event.target.dataset.cancel;
  if (id) { await action(`/api/orders/${encodeURIComponent(id)}/cancel`, `order ${id} cancelled`); refreshPanels(); }
});
$('order-upload').addEventListener('click', async () => {
  try {
    const r = await fetch('/api/orders/bulk', { method: 'POST', body: $('order-csv').value,
      headers: { 'Content-Type': 'text/csv', Authorization: `Bearer ${session.token}` } });
    const body = await r.json();
    if (!r.ok) throw new Error(body.detail);
    say(`${body.ids.length} order(s) added`); $('order-csv').value = ''; refreshPanels();
  } catch (err) { say(err.message, true); }
});

function renderTasks(tasks) {
  $('tasks').tBodies[0].innerHTML = tasks.map((t) =>
    `<tr><td>${esc(t.id)}</td><td>${t.kind.replace(/_/g, ' ')}</td><td>${esc(t.shelf)} → ${esc(t.target)}</td><td>${esc(t.robot ?? '')}</td><td>${t.status}</td></tr>`).join('');
}

const KPI_SHOWN = { orders_received: 'orders received', orders_completed: 'orders picked', order_lines_picked: 'lines picked',
  units_picked: 'units picked', units_stowed: 'units stowed', presentations: 'pick presentations',
  lines_per_presentation: 'lines / presentation', order_cycle_time_mean_s: 'order cycle mean (s)',
  order_cycle_time_p95_s: 'order cycle p95 (s)', stuck_tasks: 'stuck tasks', failed_errands: 'failed errands', no_shelf: 'no shelf for goods' };
function renderKpis(k) {
  const rows = Object.entries(KPI_SHOWN).map(([key, label]) => `<dt>${label}</dt><dd data-kpi="${key}">${k[key] ?? '—'}</dd>`);
  for (const [id, s] of Object.entries(k.stations)) rows.push(`<dt>${esc(id)} lines/h</dt><dd>${s.lines_per_hour}</dd>`);
  $('kpis').innerHTML = rows.join('');
}

// --- KPI charts ------------------------------------------------------------------------------
// The service keeps one sample per minute of fleet time for a few hours (/api/kpis/history);
// the console fetches only the samples newer than the last it has, keeps as many as the
// service does, and draws inline SVG: no library, nothing to fetch from elsewhere.
const LINES_WINDOW_S = 900; // lines per hour over the quarter of an hour before each sample
const KIND_LINE = { pick: '#2563eb', stow: '#0d9488' };
const kpiHistory = { started: undefined, interval: 60, keep: 0, t: [], robots: {}, stations: {} };
state.kpiHistory = kpiHistory; // the browser tests read it

// Appends new samples (a history begun anew, after a restart of the service, replaces the
// old); returns whether there is something new to draw.
function mergeHistory(h) {
  const anew = h.started !== kpiHistory.started;
  if (anew) Object.assign(kpiHistory, { started: h.started, t: [], robots: {}, stations: {} });
  Object.assign(kpiHistory, { interval: h.interval_s, keep: h.keep });
  if (!h.t.length) return anew;
  const append = (into, values) => { into.push(...values); into.splice(0, Math.max(0, into.length - h.keep)); };
  append(kpiHistory.t, h.t);
  for (const [s, values] of Object.entries(h.robots)) append(kpiHistory.robots[s] ??= [], values);
  for (const [id, series] of Object.entries(h.stations)) {
    const mine = kpiHistory.stations[id] ??= { kind: series.kind, lines: [], lines_per_hour: [] };
    append(mine.lines, series.lines); append(mine.lines_per_hour, series.lines_per_hour);
  }
  return true;
}

// Fleet time (seconds since the service started, simulated or wall) as h:mm, with days in
// front once the service has run for one: it runs for weeks.
function clockLabel(t) {
  const minutes = Math.floor(t / 60), hours = Math.floor(minutes / 60), hm = `${hours % 24}:${String(minutes % 60).padStart(2, '0')}`;
  return hours >= 24 ? `${Math.floor(hours / 24)}d ${hm}` : hm;
}

// Round numbers on the y axis: the smallest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^n at or
// above v, and at least `least`.
function niceMax(v, least) {
  if (!(v > least)) return least;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].map((m) => m * p).find((m) => m >= v - 1e-9);
}

const num = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

// Axes of a small chart: y gridlines and labels at 0, the top and half (if a whole number),
// the first and last sample's time under the x axis. Returns the SVG text and the scales.
function axes(w, h, m, t, yMax, interval) {
  const t0 = t.length > 1 ? t[0] : t[0] - interval, t1 = t[t.length - 1];
  const x = (v) => m.l + (v - t0) / (t1 - t0) * (w - m.l - m.r), y = (v) => h - m.b - v / yMax * (h - m.t - m.b);
  let svg = '';
  for (const v of [0, yMax, ...(Number.isInteger(yMax / 2) ? [yMax / 2] : [])]) {
    svg += `<line class="grid" x1="${m.l}" x2="${w - m.r}" y1="${y(v)}" y2="${y(v)}"/>` +
      `<text class="tick" x="${m.l - 3}" y="${y(v) + 3}" text-anchor="end">${num(v)}</text>`;
  }
  svg += `<text class="tick" x="${m.l}" y="${h - 3}">${clockLabel(t0)}</text>` +
    `<text class="tick" x="${w - m.r}" y="${h - 3}" text-anchor="end">${clockLabel(t1)}</text>`;
  return { svg, x, y };
}

// The y axis's title, turned along it in the left margin.
const yTitle = (text, h, m) => `<text class="unit" text-anchor="middle" transform="translate(7 ${(m.t + h - m.b) / 2}) rotate(-90)">${text}</text>`;

function renderCharts() {
  const t = kpiHistory.t, interval = kpiHistory.interval;
  $('lines-window').textContent = `(over ${LINES_WINDOW_S / 60} min)`;
  $('chart-note').textContent = t.length
    ? `x: fleet time (h:mm); ${t.length} sample${t.length > 1 ? 's' : ''}, one per ${interval === 60 ? 'minute' : `${num(interval / 60)} min`} of fleet time; the last ${num(kpiHistory.keep * interval / 3600)} h are kept`
    : `the first sample comes after ${num(interval / 60)} min of fleet time`;
  $('chart-states').innerHTML = t.length ? statesChart(t, interval) : '';
  $('chart-lines').innerHTML = t.length ? Object.entries(kpiHistory.stations).map(([id, s]) => linesChart(id, s, t, interval)).join('') : '';
}

// Robots by state, stacked in the legend's order, each band in the map's colour for it.
function statesChart(t, interval) {
  const w = 336, h = 120, m = { l: 32, r: 6, t: 6, b: 15 };
  const shown = Object.keys(STATE_COLOUR).filter((s) => (kpiHistory.robots[s] ?? []).some((n) => n > 0));
  const totals = t.map((_, i) => shown.reduce((n, s) => n + kpiHistory.robots[s][i], 0));
  const { svg, x, y } = axes(w, h, m, t, niceMax(Math.max(...totals), 2), interval);
  const xs = t.length > 1 ? t : [t[0] - interval, t[0]]; // one sample: a band of one interval
  const at = (s, i) => kpiHistory.robots[s][t.length > 1 ? i : 0];
  const below = xs.map(() => 0);
  let bands = '';
  for (const s of shown) {
    const above = below.map((v, i) => v + at(s, i));
    const points = [...xs.map((v, i) => `${x(v).toFixed(1)},${y(above[i]).toFixed(1)}`),
      ...xs.map((v, i) => `${x(v).toFixed(1)},${y(below[i]).toFixed(1)}`).reverse()];
    bands += `<polygon class="band" data-state="${s}" fill="${STATE_COLOUR[s]}" points="${points.join(' ')}"><title>${s.replace(/_/g, ' ')}</title></polygon>`;
    above.forEach((v, i) => { below[i] = v; });
  }
  $('chart-states-legend').innerHTML = shown.map((s) =>
    `<span data-state="${s}"><i style="background:${STATE_COLOUR[s]}"></i>${s.replace(/_/g, ' ')} ${kpiHistory.robots[s][t.length - 1]}</span>`).join('');
  return `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${svg}${bands}` +
    `${yTitle('robots', h, m)}</svg>`;
}

// One station's lines per hour: a line over a light fill, its latest value in the title.
function linesChart(id, s, t, interval) {
  const w = 164, h = 84, m = { l: 32, r: 4, t: 21, b: 15 };
  const values = s.lines_per_hour;
  const { svg, x, y } = axes(w, h, m, t, niceMax(Math.max(...values), 10), interval);
  const xs = t.length > 1 ? t : [t[0] - interval, t[0]], vs = t.length > 1 ? values : [values[0], values[0]];
  const points = xs.map((v, i) => `${x(v).toFixed(1)},${y(vs[i]).toFixed(1)}`);
  const colour = KIND_LINE[s.kind] ?? '#2563eb';
  const base = y(0).toFixed(1);
  return `<figure class="small" data-station="${esc(id)}"><svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">` +
    `<text class="title" x="2" y="11">${esc(id)} <tspan class="muted">${esc(s.kind)}</tspan></text>` +
    `<text class="now" x="${w - m.r}" y="11" text-anchor="end">${num(values[values.length - 1])}/h</text>` + svg + yTitle('lines/h', h, m) +
    `<polygon fill="${colour}" fill-opacity=".12" points="${x(xs[0]).toFixed(1)},${base} ${points.join(' ')} ${x(xs[xs.length - 1]).toFixed(1)},${base}"/>` +
    `<polyline class="series" stroke="${colour}" points="${points.join(' ')}"/></svg></figure>`;
}

function renderAlarms() {
  $('alarm-count').textContent = state.alarms.length ? `(${state.alarms.length})` : '';
  const operate = mayOperate();
  $('alarms').innerHTML = state.alarms.map((a) =>
    `<li><span class="sev-${esc(a.severity)}">${esc(a.severity)}</span><span class="text">${esc(a.message)}${a.cleared_at !== null ? ' (cleared)' : ''}</span>` +
    (a.acknowledged_by ? `<em>ack ${esc(a.acknowledged_by)}</em>` : operate ? `<button data-ack="${a.id}">Acknowledge</button>` : '') + '</li>').join('');
}
$('alarms').addEventListener('click', (event) => { const id = event.target.dataset.ack; if (id) action(`/api/alarms/${id}/acknowledge`, `alarm ${id} acknowledged`); });

// --- operator buttons ------------------------------------------------------------------------
$('pause-all').addEventListener('click', () => action('/api/fleet/pause', 'fleet paused'));
$('resume-all').addEventListener('click', () => action('/api/fleet/resume', 'fleet resumed'));
$('estop').addEventListener('click', () => { if (confirm('Emergency stop every robot?')) action('/api/fleet/emergency-stop', 'emergency stop sent'); });
$('reset').addEventListener('click', () => action('/api/fleet/reset', 'reset sent'));
$('sel-pause').addEventListener('click', () => action(`/api/robots/${state.selected}/pause`, `${state.selected} paused`));
$('sel-resume').addEventListener('click', () => action(`/api/robots/${state.selected}/resume`, `${state.selected} resumed`));
$('sel-out').addEventListener('click', () => action(`/api/robots/${state.selected}/out-of-service`, `${state.selected} out of service`));
$('sel-in').addEventListener('click', () => action(`/api/robots/${state.selected}/in-service`, `${state.selected} into service`));
$('sel-charge').addEventListener('click', () => action(`/api/robots/${state.selected}/charge`, `${state.selected} sent to charge`));
$('shelf-pick').addEventListener('click', () => setPicking(!state.picking));
$('shelf-move').addEventListener('click', moveShelf);

// --- start -----------------------------------------------------------------------------------
start(enter);
