// Executions, runtimes, webhooks and jobs: lists (paged), details, and creation where the API
// allows it.

import { api, get, text } from './api.js';
import {
  actionButton, announce, details, errorMessage, field, fill, form, h, onLeave, pagedList, select, table,
  versionName, when,
} from './dom.js';

const STATUSES = [['', 'any'], ['running', 'running'], ['success', 'success'], ['failed', 'failed']];
const POLL_MS = 1000;

/** Repeats `step` every POLL_MS until it returns false or the page is left. */
function poll(step) {
  let timer = null;
  const tick = async () => {
    timer = null;
    if (await step()) timer = setTimeout(tick, POLL_MS);
  };
  onLeave(() => timer && clearTimeout(timer));
  timer = setTimeout(tick, POLL_MS);
}

function functionLink(id, short = false) {
  return id ? h('a', { href: `#/functions/${encodeURIComponent(id)}`, title: short ? id : null }, short ? id.slice(0, 8) : id) : '—';
}

/** A list of executions with filters on version and status; running ones are polled live. */
export function executionsView(query) {
  const version = h('input', { type: 'number', name: 'function_version', min: 0 });
  const status = select('status', STATUSES, '');
  const holder = h('div');
  let timer = null;
  onLeave(() => clearTimeout(timer));
  const show = () => {
    const filters = { ...query };
    if (version.value !== '') filters.function_version = version.value;
    if (status.value) filters.status = status.value;
    const list = pagedList('/executions', 'executions', (rows) => {
      clearTimeout(timer);
      if (rows.some((e) => e.status === 'running')) timer = setTimeout(() => list.reload(), POLL_MS);
      return table('Executions', [
        ['Execution', (e) => h('a', { href: `#/executions/${e.id}` }, e.id.slice(0, 8))],
        ...(query.function_id ? [] : [['Function', (e) => functionLink(e.function_id, true)]]),
        ['Version', (e) => versionName(e.function_version)],
        ['Alias', (e) => e.function_alias || '—'],
        ['Status', (e) => h('span', { class: `badge ${e.status}` }, e.status)],
        ['Description', (e) => e.description || ''],
        ['Created', (e) => when(e.created_at)],
      ], rows, 'No executions.');
    }, { label: 'Execution pages', query: filters });
    fill(holder, list);
  };
  show();
  return [
    form('Filter executions', [field('Version (0: current code)', version), field('Status', status)], 'Filter', async () => show()),
    holder,
  ];
}

function output(execution) {
  if (!execution.result) return '';
  try {
    const result = JSON.parse(execution.result);
    const value = typeof result.output === 'string' ? result.output : JSON.stringify(result.output, null, 2);
    return [value ?? '', result.duration !== undefined ? `\n(${result.duration} s)` : ''];
  } catch {
    return execution.result;
  }
}

/** An execution's status, result and log, followed live until it ends. */
export function executionView(id, known) {
  const out = h('div', { class: 'execution' });
  const draw = async (execution) => {
    const log = execution.status === 'running' ? '' : await text(`/executions/${id}/log`).catch((error) => `(${error.message})`);
    fill(out,
      details([
        ['Execution', h('a', { href: `#/executions/${id}` }, id)],
        ['Status', h('span', { class: `badge ${execution.status}` }, execution.status)],
        ['Function', functionLink(execution.function_id)],
        ['Version', versionName(execution.function_version)],
        ['Alias', execution.function_alias],
        ['Input', execution.input ? h('code', {}, execution.input) : null],
        ['Created', when(execution.created_at)],
      ]),
      h('h3', {}, 'Result'), h('pre', { class: 'result', tabindex: 0, 'aria-label': 'Result' }, output(execution)),
      h('h3', {}, 'Log'), h('pre', { class: 'log', tabindex: 0, 'aria-label': 'Log' }, log || (execution.status === 'running' ? 'Running…' : '(empty)')));
    return execution.status === 'running';
  };
  const load = async () => {
    try {
      return await draw(await get(`/executions/${id}`));
    } catch (error) {
      fill(out, errorMessage(error));
      return false;
    }
  };
  (known ? draw(known) : load()).then((running) => running && poll(load));
  return out;
}

export function executionList() {
  return [h('h1', {}, 'Executions'), executionsView({})];
}

export function executionPage(id) {
  return [
    h('p', { class: 'crumbs' }, h('a', { href: '#/executions' }, 'Executions')),
    h('h1', {}, `Execution ${id.slice(0, 8)}`),
    executionView(id),
    h('div', { class: 'actions' }, actionButton('Delete execution', async () => {
      await api('DELETE', `/executions/${id}`);
      announce('Execution deleted.');
      location.hash = '#/executions';
    }, { confirmText: 'Delete this execution?', kind: 'danger' })),
  ];
}

/** Form values as JSON: empty fields left out, `numbers` converted. */
function body(data, numbers = []) {
  const json = {};
  for (const [key, value] of data.entries()) {
    if (value === '') continue;
    json[key] = numbers.includes(key) ? Number(value) : value;
  }
  return json;
}

function input(name, attrs = {}) {
  return h('input', { name, maxlength: 255, ...attrs });
}

/** A resource's detail page: its fields, and a delete that asks first. */
function detailPage(kind, plural, path, id, pairs) {
  const out = h('div', {}, h('p', {}, 'Loading…'));
  get(`${path}/${encodeURIComponent(id)}`).then((row) => fill(out, details(pairs(row)), h('div', { class: 'actions' },
    actionButton(`Delete ${kind}`, async () => {
      await api('DELETE', `${path}/${encodeURIComponent(id)}`);
      announce(`The ${kind} was deleted.`);
      location.hash = `#${path}`;
    }, { confirmText: `Delete this ${kind}?`, kind: 'danger' }))), (error) => fill(out, errorMessage(error)));
  return [
    h('p', { class: 'crumbs' }, h('a', { href: `#${path}` }, plural)),
    h('h1', {}, `${kind[0].toUpperCase()}${kind.slice(1)} ${id}`),
    out,
  ];
}

/** A list page with a create form above its paged table. */
function listPage(title, path, key, creator, columns) {
  const list = pagedList(path, key, (rows) => table(title, columns, rows), { label: `${title} pages` });
  return [
    h('h1', {}, title),
    h('details', { class: 'create' }, h('summary', {}, creator.summary),
      form(creator.summary, creator.fields, 'Create', async (data) => {
        const created = await api('POST', path, creator.body(data));
        announce(`Created ${created.name || created.id}.`);
        list.reload();
      })),
    list,
  ];
}

export function runtimeList() {
  return listPage('Runtimes', '/runtimes', 'runtimes', {
    summary: 'New runtime',
    fields: [field('Name', input('name')), field('Image (spinling/wasm or a worker URL)', input('image', { required: true, value: 'spinling/wasm' })),
      field('Description', input('description'))],
    body: (data) => body(data),
  }, [
    ['Name', (r) => h('a', { href: `#/runtimes/${r.id}` }, r.name || r.id)],
    ['Image', (r) => r.image],
    ['Status', (r) => h('span', { class: `badge ${r.status}` }, r.status)],
    ['Created', (r) => when(r.created_at)],
  ]);
}

export function runtimePage(id) {
  return detailPage('runtime', 'Runtimes', '/runtimes', id, (r) => [
    ['Name', r.name], ['Image', r.image], ['Status', r.status], ['Description', r.description],
    ['Created', when(r.created_at)], ['Updated', when(r.updated_at)],
  ]);
}

const targetFields = () => [
  field('Function ID', input('function_id')),
  field('Version (0: current code)', input('function_version', { type: 'number', min: 0 })),
  field('Or an alias', input('function_alias')),
];

function target(row) {
  if (row.function_alias) return `alias ${row.function_alias}`;
  return [functionLink(row.function_id), row.function_version ? ` v${row.function_version}` : ' (current code)'];
}

export function webhookList() {
  return listPage('Webhooks', '/webhooks', 'webhooks', {
    summary: 'New webhook',
    fields: [...targetFields(), field('Description', input('description'))],
    body: (data) => body(data, ['function_version']),
  }, [
    ['Webhook', (w) => h('a', { href: `#/webhooks/${w.id}` }, w.id.slice(0, 8))],
    ['Runs', target],
    ['Description', (w) => w.description || ''],
    ['URL', (w) => h('code', {}, w.webhook_url)],
  ]);
}

export function webhookPage(id) {
  return detailPage('webhook', 'Webhooks', '/webhooks', id, (w) => [
    ['Runs', target(w)], ['URL', h('code', {}, w.webhook_url)], ['Description', w.description],
    ['Created', when(w.created_at)], ['Updated', when(w.updated_at)],
  ]);
}

export function jobList() {
  return listPage('Jobs', '/jobs', 'jobs', {
    summary: 'New job',
    fields: [field('Name', input('name')), ...targetFields(),
      field('Pattern (cron, UTC)', input('pattern', { placeholder: '0 3 * * *' })),
      field('First execution time (UTC)', input('first_execution_time', { placeholder: '2030-01-01T12:00:00Z' })),
      field('Count', input('count', { type: 'number', min: 1 })),
      field('Input', input('function_input'))],
    body: (data) => body(data, ['function_version', 'count']),
  }, [
    ['Name', (j) => h('a', { href: `#/jobs/${j.id}` }, j.name || j.id)],
    ['Runs', target],
    ['Status', (j) => h('span', { class: `badge ${j.status}` }, j.status)],
    ['Pattern', (j) => j.pattern || '—'],
    ['Next', (j) => when(j.next_execution_time)],
    ['Left', (j) => (j.count ?? '∞')],
  ]);
}

export function jobPage(id) {
  const page = detailPage('job', 'Jobs', '/jobs', id, (j) => [
    ['Name', j.name], ['Runs', target(j)], ['Status', j.status], ['Pattern', j.pattern],
    ['Next execution', when(j.next_execution_time)], ['Count left', j.count ?? 'unlimited'],
    ['Input', j.function_input ? h('code', {}, j.function_input) : null],
    ['Its executions are described', `Created by Job ${j.id}`],
  ]);
  const status = (value, label) => actionButton(label, async () => {
    await api('PUT', `/jobs/${encodeURIComponent(id)}`, { status: value });
    announce(`Job ${label.toLowerCase()}d.`);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  });
  page.push(h('div', { class: 'actions' }, status('paused', 'Pause'), status('running', 'Resume')));
  return page;
}
