// The station terminal for one port: what the lights show (the lit bin on the shelf at the
// port, the lit box on the put wall), the item and quantity, and the keys a person presses:
// confirm or short pick at a pick port, goods scan then bin scan at a stow port. It polls
// the terminal every POLL_MS; each key answers with the new state at once.

import { api, mayOperate, session, start } from './session.js';

const POLL_MS = 500;
const $ = (id) => document.getElementById(id);
const term = { station: new URLSearchParams(location.search).get('station'), view: null, busy: false };
window.fleetTerminal = term; // for the browser tests

function say(text, isError = false) {
  const el = $('message');
  el.textContent = text; el.style.color = isError ? '#b91c1c' : '';
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { el.textContent = ''; }, 5000);
}

async function enter() {
  const map = await api('/api/map');
  const stations = map.stations.map((s) => s.id);
  if (!stations.includes(term.station)) term.station = stations[0];
  $('station').innerHTML = map.stations.map((s) => `<option value="${s.id}">${s.id} (${s.kind})</option>`).join('');
  $('station').value = term.station;
  const operate = mayOperate();
  document.querySelectorAll('.operator-only').forEach((e) => { e.hidden = !operate; });
  $('readonly').hidden = operate;
  poll();
}

$('station').addEventListener('change', () => {
  term.station = $('station').value;
  history.replaceState(null, '', `?station=${encodeURIComponent(term.station)}`);
  term.view = null; poll();
});

async function poll() {
  clearTimeout(poll.timer);
  if (!session.token) return;
  try { if (!term.busy) render(await api(`/api/stations/${encodeURIComponent(term.station)}/terminal`)); }
  catch (err) { say(err.message, true); }
  poll.timer = setTimeout(poll, POLL_MS);
}
session.onLogout = () => clearTimeout(poll.timer);

function render(v) {
  term.view = v;
  const lit = v.lit, operate = mayOperate();
  $('kind').textContent = `${v.kind} station`;
  $('worked-by').textContent = v.manned ? 'worked here' : 'simulated operator';
  $('shelf').textContent = v.shelf ?? '—';
  $('carrier').textContent = v.shelf && v.robot ? `on ${v.robot}` : '';
  $('queue').textContent = v.queue.length > (v.shelf ? 1 : 0) ? `coming: ${v.queue.slice(v.shelf ? 1 : 0).join(', ')}` : 'nobody in the queue';
  renderGrid(v.bins, lit && lit.bin);
  $('idle').hidden = Boolean(lit);
  $('pick').hidden = !(lit && v.kind === 'pick');
  $('stow').hidden = !(lit && v.kind === 'stow');
  $('progress').textContent = v.shelf ? `${v.kind === 'pick' ? 'pick' : 'put'} ${Math.min(v.done + 1, v.total)} of ${v.total} · ${v.units} units so far` : '';
  $('start').parentElement.hidden = !(operate && v.kind === 'pick' && !v.manned);
  const keysUsable = operate && (v.kind !== 'pick' || v.manned);
  document.querySelectorAll('#pick button, #stow button').forEach((b) => { b.disabled = !keysUsable; });
  if (lit && v.kind === 'pick') {
    $('pick-bin').textContent = lit.bin; $('pick-name').textContent = lit.name; $('pick-sku').textContent = lit.sku;
    $('pick-qty').textContent = lit.quantity; $('pick-box').textContent = lit.box;
    $('pick-slot').textContent = lit.slot ? `(order ${lit.order}, ${lit.slot})` : `(order ${lit.order})`;
    $('confirm').textContent = `Confirm ${lit.quantity}`;
    $('found').max = lit.quantity - 1;
  }
  if (lit && v.kind === 'stow') {
    $('stow-bin').textContent = lit.bin; $('stow-name').textContent = lit.name; $('stow-sku').textContent = lit.sku;
    $('stow-qty').textContent = lit.quantity;
    $('scan-item').hidden = !operate || lit.scanned; $('scan-bin').hidden = !operate || !lit.scanned;
  }
}

// The shelf's bins as the person sees them: top level first, left to right; the lit one glows.
function renderGrid(bins, litBin) {
  const cells = bins.map((label) => { const m = /-L(\d+)-B(\d+)$/.exec(label); return { label, level: Number(m?.[1] ?? 1), place: Number(m?.[2] ?? 1) }; });
  const places = Math.max(1, ...cells.map((c) => c.place)), levels = Math.max(1, ...cells.map((c) => c.level));
  const grid = $('grid');
  grid.style.gridTemplateColumns = `repeat(${places}, 1fr)`;
  grid.innerHTML = cells.map((c) => `<div class="${c.label === litBin ? 'lit' : ''}" data-bin="${c.label}" ` +
    `style="grid-row:${levels - c.level + 1};grid-column:${c.place}">${c.label === litBin ? c.label.split('-').slice(1).join('-') : ''}</div>`).join('');
}

async function key(path, body, said) {
  term.busy = true;
  try {
    const v = await api(`/api/stations/${encodeURIComponent(term.station)}/terminal/${path}`, { method: 'POST', body: JSON.stringify(body ?? {}) });
    term.busy = false; render(v); if (said) say(said);
    return true;
  } catch (err) { term.busy = false; say(err.message, true); return false; }
}

$('start').addEventListener('click', () => key('pick-start', null, 'you work this station now'));
$('confirm').addEventListener('click', () => { const lit = term.view?.lit; if (lit) key('confirm', { quantity: lit.quantity }, `${lit.quantity} × ${lit.sku} confirmed`); });
$('short').addEventListener('click', () => {
  const lit = term.view?.lit;
  if (lit) key('short-pick', { quantity: Number($('found').value || 0) }, `short pick of ${lit.sku} reported`);
});
$('scan-item').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (await key('stow-scan', { sku: $('scan-sku').value.trim(), quantity: Number($('scan-qty').value || 0) }, 'goods scanned: put them into the lit bin')) {
    $('scan-sku').value = ''; $('scan-qty').value = ''; $('scan-bin-label').focus();
  }
});
$('scan-bin').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (await key('bin-scan', { bin: $('scan-bin-label').value.trim() }, 'put confirmed')) { $('scan-bin-label').value = ''; $('scan-sku').focus(); }
});

start(enter);
