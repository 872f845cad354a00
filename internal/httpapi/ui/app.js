// akvsync dashboard: plain JavaScript, no build step, no third-party code.
//
// The access token lives in this page's memory only (never in storage or a
// cookie) and is refreshed with the single-use refresh token before it
// expires. Every API call sends it as "Authorization: Bearer". The event
// stream is opened with a single-use ticket (EventSource cannot send
// headers); when the stream drops, the page asks for a new ticket and
// resumes after the last event it saw (?last_event_id=).
'use strict';

(() => {
  const API = '/api/v1';
  const AZ = API + '/cckm/azure';
  const JOBS_LIMIT = 25;
  const VAULTS_LIMIT = 50;
  const KEYS_LIMIT = 50;
  // SSE event names: "<scope>.<kind>" of the CloudEvents type (docs/api.md).
  const EVENT_NAMES = [
    'job.requested', 'job.abort_requested', 'job.finished', 'job.progress',
    'vault.started', 'vault.progress', 'vault.completed', 'vault.failed', 'vault.aborted',
  ];

  const state = {
    jwt: '', refresh: '', refreshTimer: 0, self: null,
    es: null, lastEventId: '', reconnectTimer: 0, backoff: 1000, pollTimer: 0,
    pending: new Map(), // job id -> refresh timer
    detail: '', vaultSkip: 0, vaultTotal: 0,
    keySkip: 0, keyTotal: 0, keyQuery: '',
  };
  const $ = (id) => document.getElementById(id);

  // ---- API calls ----------------------------------------------------------

  class APIError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function call(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (state.jwt) headers.Authorization = 'Bearer ' + state.jwt;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
    if (!res.ok) {
      if (res.status === 401 && state.jwt && !path.endsWith('/auth/tokens')) signOut('Your session ended; sign in again.');
      throw new APIError(res.status, (data && data.message) || (res.status + ' ' + res.statusText));
    }
    return data;
  }

  function showError(err) {
    $('app-error').textContent = err ? String(err.message || err) : '';
  }

  // ---- sign-in and tokens -------------------------------------------------

  function takeToken(t) {
    state.jwt = t.jwt;
    state.refresh = t.refresh_token;
    clearTimeout(state.refreshTimer);
    const seconds = Math.max(5, (t.duration || 300) * 0.75);
    state.refreshTimer = setTimeout(refreshToken, seconds * 1000);
  }

  async function refreshToken() {
    if (!state.refresh) return;
    try {
      takeToken(await call('POST', API + '/auth/tokens', { grant_type: 'refresh_token', refresh_token: state.refresh }));
    } catch (e) {
      signOut('Your session ended; sign in again.');
    }
  }

  async function signIn(ev) {
    ev.preventDefault();
    const form = ev.target;
    $('signin-error').textContent = '';
    const username = form.elements.username.value;
    const password = form.elements.password.value;
    try {
      takeToken(await call('POST', API + '/auth/tokens', { grant_type: 'password', username, password }));
      form.elements.password.value = '';
      state.self = await call('GET', API + '/auth/self');
    } catch (e) {
      clearTimeout(state.refreshTimer);
      state.jwt = ''; state.refresh = ''; state.self = null;
      $('signin-error').textContent = e.message;
      return;
    }
    $('who').textContent = state.self.username + ' (' + state.self.role + ')';
    $('signin').hidden = true;
    $('app').hidden = false;
    $('signout').hidden = false;
    showView('jobs-view');
    loadJobs();
    connectEvents();
  }

  function signOut(message) {
    const refresh = state.refresh;
    state.jwt = ''; state.refresh = ''; state.self = null; state.lastEventId = '';
    clearTimeout(state.refreshTimer); clearTimeout(state.reconnectTimer); clearInterval(state.pollTimer);
    state.pollTimer = 0;
    if (state.es) { state.es.close(); state.es = null; }
    setLive(false);
    if (refresh) {
      fetch(API + '/auth/revoke', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, credentials: 'omit',
        body: JSON.stringify({ refresh_token: refresh }),
      }).catch(() => {});
    }
    $('jobs').tBodies[0].replaceChildren();
    $('app').hidden = true;
    $('signout').hidden = true;
    $('who').textContent = '';
    $('signin').hidden = false;
    $('signin-error').textContent = typeof message === 'string' ? message : '';
  }

  function can(perm) { return !!(state.self && (state.self.permissions || []).includes(perm)); }

  // ---- live events --------------------------------------------------------

  function setLive(on) {
    const el = $('live');
    el.textContent = on ? 'live' : 'offline';
    el.className = 'live ' + (on ? 'on' : 'off');
    // Without the stream, poll so the page does not go stale.
    if (!on && state.jwt && !state.pollTimer) state.pollTimer = setInterval(loadJobs, 10000);
    if (on && state.pollTimer) { clearInterval(state.pollTimer); state.pollTimer = 0; }
  }

  async function connectEvents() {
    clearTimeout(state.reconnectTimer);
    if (!state.jwt || state.es) return;
    let ticket;
    try {
      ticket = await call('POST', AZ + '/events/tickets');
    } catch (e) {
      scheduleReconnect();
      return;
    }
    if (!state.jwt || state.es) return;
    let url = AZ + '/events?ticket=' + encodeURIComponent(ticket.ticket);
    if (state.lastEventId) url += '&last_event_id=' + encodeURIComponent(state.lastEventId);
    const es = new EventSource(url);
    state.es = es;
    es.onopen = () => { state.backoff = 1000; setLive(true); };
    // A ticket opens one stream once: on any error, close this one and
    // open a new one with a new ticket, resuming after the last event.
    es.onerror = () => {
      es.close();
      if (state.es !== es) return;
      state.es = null;
      setLive(false);
      scheduleReconnect();
    };
    for (const name of EVENT_NAMES) es.addEventListener(name, onEvent);
  }

  function scheduleReconnect() {
    if (!state.jwt) return;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(connectEvents, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 30000);
  }

  function onEvent(ev) {
    if (ev.lastEventId) state.lastEventId = ev.lastEventId;
    let ce;
    try { ce = JSON.parse(ev.data); } catch (e) { return; }
    const d = ce.data || {};
    let id = d.job_id || (d.job && d.job.id) || '';
    if (!id && ev.type.startsWith('job.')) id = d.id || ce.subject || '';
    if (id) refreshJobSoon(id);
  }

  // refreshJobSoon reads a job again after a burst of its events settles.
  function refreshJobSoon(id) {
    if (state.pending.has(id)) return;
    state.pending.set(id, setTimeout(async () => {
      state.pending.delete(id);
      try {
        const job = await call('GET', AZ + '/synchronization-jobs/' + encodeURIComponent(id));
        upsertJobRow(job, true);
        if (state.detail === id) { renderJobDetail(job); loadVaults(); }
      } catch (e) { /* the next event or poll retries */ }
    }, 250));
  }

  // ---- jobs list ----------------------------------------------------------

  async function loadJobs() {
    if (!state.jwt) return;
    try {
      const page = await call('GET', AZ + '/synchronization-jobs?limit=' + JOBS_LIMIT);
      for (const job of page.resources || []) upsertJobRow(job, false);
      $('jobs-empty').hidden = (page.resources || []).length > 0;
    } catch (e) { showError(e); }
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function fmtInt(n) { return typeof n === 'number' ? n.toLocaleString('en-US') : '–'; }

  function fmtDuration(s) {
    if (typeof s !== 'number' || !isFinite(s) || s < 0) return '–';
    s = Math.round(s);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  function fmtTime(t) {
    if (!t) return '–';
    const d = new Date(t);
    return isNaN(d) ? t : d.toLocaleString();
  }

  // progressOf reads a job's counts from its CCKM fields, its progress
  // object and, when the server has it, its stats object. Without stats,
  // the rate is the keys listed over the time the job ran, and the ETA
  // extrapolates the vaults done so far.
  function progressOf(job) {
    const p = job.progress || {};
    const s = job.stats || {};
    const total = job.vaults_total || 0;
    const done = (p.completed || 0) + (p.failed || 0) + (p.aborted || 0);
    const sk = s.keys || {};
    const az = s.azure || {};
    const keys = typeof sk.seen === 'number' ? sk.seen : p.keys_listed;
    let rate = s.keys_per_second;
    let eta = s.eta_seconds;
    const start = Date.parse(job.createdAt);
    const end = job.completed_at ? Date.parse(job.completed_at) : Date.now();
    const ran = (end - start) / 1000;
    if (typeof rate !== 'number' && typeof keys === 'number' && ran > 0) rate = keys / ran;
    if (typeof eta !== 'number') {
      if (job.overall_status !== 'in_progress') eta = 0;
      else if (done > 0 && ran > 0) eta = ran * (total - done) / done;
    }
    const cost = s.cost && typeof s.cost.estimated === 'number' ? s.cost : null;
    return { total, done, keys, rate, eta, calls: az.requests, throttled: az.throttled, cost };
  }

  function rateText(pr) {
    return (typeof pr.rate === 'number' ? pr.rate.toFixed(1) + ' keys/s' : '–') + ' · ETA ' + (pr.eta === 0 ? 'done' : fmtDuration(pr.eta));
  }

  function progressCell(job) {
    const pr = progressOf(job);
    const box = el('div', undefined, 'progress-cell');
    const bar = el('progress');
    bar.max = Math.max(pr.total, 1);
    bar.value = job.overall_status === 'in_progress' ? pr.done : Math.max(pr.done, pr.total);
    box.append(bar, el('div', pr.done + ' / ' + pr.total + ' vaults', 'progress-text'));
    return box;
  }

  function upsertJobRow(job, live) {
    const body = $('jobs').tBodies[0];
    let tr = body.querySelector('tr[data-job-id="' + CSS.escape(job.id) + '"]');
    const fresh = !tr;
    if (fresh) {
      tr = el('tr');
      tr.dataset.jobId = job.id;
      tr.addEventListener('click', () => openJob(job.id));
    }
    const pr = progressOf(job);
    tr.dataset.status = job.overall_status;
    tr.replaceChildren(
      cellWith(el('code', job.id.slice(0, 8), undefined), job.id),
      el('td', fmtTime(job.createdAt)),
      statusCell(job),
      cellWith(progressCell(job)),
      el('td', fmtInt(pr.keys), 'num'),
      el('td', rateText(pr)),
      el('td', fmtInt(pr.calls) + ' / ' + fmtInt(pr.throttled) + (pr.cost ? ' · ≈' + pr.cost.estimated.toFixed(4) + ' ' + pr.cost.currency : ''), 'num azure-calls'),
    );
    if (fresh) {
      // Newest first: a job seen live goes on top, a listed one in order.
      if (live) body.prepend(tr); else body.append(tr);
      $('jobs-empty').hidden = true;
    }
  }

  // statusCell shows the job's status and, for a cancelled job, says so.
  function statusCell(job) {
    const td = cellWith(el('span', job.overall_status, 'status ' + job.overall_status));
    if (job.abort) td.append(' ', el('span', 'cancelled', 'status aborted'));
    return td;
  }

  function cellWith(child, title) {
    const td = el('td');
    td.append(child);
    if (title) td.title = title;
    return td;
  }

  // ---- job detail ---------------------------------------------------------

  function showView(id) {
    for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== id;
    for (const t of document.querySelectorAll('.tab')) {
      t.classList.toggle('active', t.dataset.view === id || (id === 'job-view' && t.dataset.view === 'jobs-view'));
    }
    if (id !== 'job-view') state.detail = '';
    showError(null);
  }

  async function openJob(id) {
    state.detail = id;
    state.vaultSkip = 0;
    $('vault-status').value = '';
    $('vaults').tBodies[0].replaceChildren();
    $('job-summary').replaceChildren();
    $('job-id').textContent = id;
    resetCancel();
    showView('job-view');
    state.detail = id;
    try {
      renderJobDetail(await call('GET', AZ + '/synchronization-jobs/' + encodeURIComponent(id)));
      await loadVaults();
    } catch (e) { showError(e); }
  }

  function renderJobDetail(job) {
    if (state.detail !== job.id) return;
    $('job-view').dataset.jobId = job.id;
    $('job-view').dataset.status = job.overall_status;
    const st = $('job-status');
    st.textContent = job.overall_status;
    st.className = 'status ' + job.overall_status;
    $('job-progress').replaceChildren(progressCell(job));
    const pr = progressOf(job);
    const p = job.progress || {};
    const rows = [
      ['Created', fmtTime(job.createdAt) + (job.created_by ? ' by ' + job.created_by : '')],
      ['Completed', fmtTime(job.completed_at)],
      ['Vaults', pr.total + ' (' + [
        'completed ' + (p.completed || 0), 'in progress ' + (p.in_progress || 0), 'pending ' + (p.pending || 0),
        'failed ' + (p.failed || 0), 'aborted ' + (p.aborted || 0)].join(', ') + ')'],
      ['Keys', 'listed ' + fmtInt(p.keys_listed) + ', fetched ' + fmtInt(p.keys_fetched) +
        ', unchanged ' + fmtInt(p.keys_unchanged) + ', gone ' + fmtInt(p.keys_gone)],
      ['Rate / ETA', rateText(pr)],
      ['Azure calls / 429s', fmtInt(pr.calls) + ' / ' + fmtInt(pr.throttled)],
      ['Cancelled', job.abort ? 'yes' : 'no'],
    ];
    const dl = $('job-summary');
    dl.replaceChildren();
    for (const [k, v] of rows) dl.append(el('dt', k), el('dd', v));
    $('cancel').hidden = !(can('jobs:write') && job.overall_status === 'in_progress' && !job.abort);
  }

  async function loadVaults() {
    const id = state.detail;
    if (!id) return;
    const status = $('vault-status').value;
    let q = '?skip=' + state.vaultSkip + '&limit=' + VAULTS_LIMIT;
    if (status) q += '&status=' + encodeURIComponent(status);
    try {
      const page = await call('GET', AZ + '/synchronization-jobs/' + encodeURIComponent(id) + '/vaults' + q);
      if (state.detail !== id) return;
      state.vaultTotal = page.total || 0;
      const body = $('vaults').tBodies[0];
      body.replaceChildren();
      for (const v of page.resources || []) {
        const tr = el('tr');
        tr.dataset.vaultId = v.vault_id;
        tr.dataset.status = v.status;
        const st = cellWith(el('span', v.status, 'status ' + v.status));
        if (v.error) st.title = v.error;
        tr.append(el('td', v.name), st, el('td', fmtInt(v.keys_listed), 'num'), el('td', fmtInt(v.keys_fetched), 'num'),
          el('td', fmtInt(v.keys_unchanged), 'num'), el('td', fmtInt(v.keys_gone), 'num'), el('td', v.attempt || '', 'num'),
          el('td', fmtTime(v.started_at)), el('td', fmtTime(v.finished_at)));
        body.append(tr);
      }
      pagerText('vaults', state.vaultSkip, (page.resources || []).length, state.vaultTotal, VAULTS_LIMIT);
    } catch (e) { showError(e); }
  }

  function pagerText(prefix, skip, n, total, limit) {
    $(prefix + '-page').textContent = total ? (skip + 1) + '–' + (skip + n) + ' of ' + total : 'none';
    $(prefix + '-prev').disabled = skip === 0;
    $(prefix + '-next').disabled = skip + limit >= total;
  }

  function resetCancel() {
    const b = $('cancel');
    b.classList.remove('confirm');
    b.textContent = 'Cancel job';
    b.disabled = false;
  }

  // The first click asks for confirmation, the second cancels.
  async function cancelJob() {
    const b = $('cancel');
    if (!b.classList.contains('confirm')) {
      b.classList.add('confirm');
      b.textContent = 'Confirm: cancel this job';
      return;
    }
    b.disabled = true;
    try {
      const job = await call('POST', AZ + '/synchronization-jobs/' + encodeURIComponent(state.detail) + '/cancel');
      renderJobDetail(job);
      upsertJobRow(job, false);
    } catch (e) { showError(e); }
    resetCancel();
  }

  // ---- inventory ----------------------------------------------------------

  async function searchKeys(ev) {
    if (ev) { ev.preventDefault(); state.keySkip = 0; }
    const params = new URLSearchParams();
    for (const [k, v] of new FormData($('keys-form'))) if (String(v).trim()) params.set(k, String(v).trim());
    params.set('skip', state.keySkip);
    params.set('limit', KEYS_LIMIT);
    try {
      const page = await call('GET', AZ + '/keys?' + params);
      state.keyTotal = page.total || 0;
      const body = $('keys').tBodies[0];
      body.replaceChildren();
      for (const k of page.resources || []) {
        const tr = el('tr');
        tr.dataset.keyId = k.id;
        const az = k.azure_param || {};
        tr.append(el('td', k.key_name), el('td', k.key_vault), el('td', (az.key || {}).kty || ''),
          el('td', k.key_size || '', 'num'), el('td', (az.attributes || {}).enabled ? 'yes' : 'no'),
          el('td', k.gone ? 'yes' : 'no'), el('td', fmtTime(k.syncedAt)));
        body.append(tr);
      }
      pagerText('keys', state.keySkip, (page.resources || []).length, state.keyTotal, KEYS_LIMIT);
      showError(null);
    } catch (e) { showError(e); }
  }

  // ---- wiring -------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    $('signin-form').addEventListener('submit', signIn);
    $('signout').addEventListener('click', () => signOut(''));
    for (const t of document.querySelectorAll('.tab')) {
      t.addEventListener('click', () => {
        showView(t.dataset.view);
        if (t.dataset.view === 'jobs-view') loadJobs();
      });
    }
    $('back').addEventListener('click', () => { showView('jobs-view'); loadJobs(); });
    $('cancel').addEventListener('click', cancelJob);
    $('vault-status').addEventListener('change', () => { state.vaultSkip = 0; loadVaults(); });
    $('vaults-prev').addEventListener('click', () => { state.vaultSkip = Math.max(0, state.vaultSkip - VAULTS_LIMIT); loadVaults(); });
    $('vaults-next').addEventListener('click', () => { state.vaultSkip += VAULTS_LIMIT; loadVaults(); });
    $('keys-form').addEventListener('submit', searchKeys);
    $('keys-prev').addEventListener('click', () => { state.keySkip = Math.max(0, state.keySkip - KEYS_LIMIT); searchKeys(); });
    $('keys-next').addEventListener('click', () => { state.keySkip += KEYS_LIMIT; searchKeys(); });
  });
})();
