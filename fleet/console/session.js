// The session shared by the console and the station terminal: the token (kept for the
// browser tab), the API call that sends it, and the login form both pages carry.

const $ = (id) => document.getElementById(id);
export const session = {
  token: sessionStorage.getItem('fleet-token'),
  me: null,
  onLogout: () => {}, // the page's clean-up (close its live feed)
};

export async function api(path, options = {}) {
  const headers = { 'Content-Type': 'application/json', ...(session.token ? { Authorization: `Bearer ${session.token}` } : {}) };
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 && path !== '/api/login') { showLogin('Your session ended: log in again.'); }
  if (!response.ok) { throw new Error(typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail ?? body)); }
  return body;
}

export const mayOperate = () => session.me !== null && (session.me.role === 'operator' || session.me.role === 'admin');

export function showLogin(error = '') {
  session.onLogout();
  session.token = null; session.me = null; sessionStorage.removeItem('fleet-token');
  $('app').hidden = true; $('login').hidden = false; $('login-error').textContent = error;
}

// Wires the login form and the log-out button; `enter` builds the page once logged in.
export function start(enter) {
  const enterAs = async () => {
    session.me = await api('/api/me');
    $('login').hidden = true; $('app').hidden = false;
    $('who').textContent = `${session.me.name} (${session.me.role})`;
    await enter();
  };
  $('login').addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const s = await api('/api/login', { method: 'POST', body: JSON.stringify({ username: $('login-user').value, password: $('login-password').value }) });
      session.token = s.token; sessionStorage.setItem('fleet-token', s.token);
      $('login-password').value = '';
      await enterAs();
    } catch (err) { $('login-error').textContent = err.message; }
  });
  $('logout').addEventListener('click', async () => { try { await api('/api/logout', { method: 'POST' }); } finally { showLogin(); } });
  if (session.token) enterAs().catch(() => showLogin()); else showLogin();
}
