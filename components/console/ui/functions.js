// Functions: the list, and a function's page with its tabs (overview, versions, diff, aliases,
// executions, run).

import { all, api, blob, get } from './api.js';
import {
  actionButton, announce, details, errorMessage, field, fill, form, h, onLeave, pagedList, percent, select, shares,
  table, versionName, weightBar, when,
} from './dom.js';
import { executionsView, executionView } from './resources.js';

const link = (fn) => h('a', { href: `#/functions/${encodeURIComponent(fn.id)}` }, fn.name || fn.id);

export function functionList() {
  const filter = h('input', { type: 'search', name: 'filter', autocomplete: 'off' });
  const holder = h('div');
  let shown = [];
  const draw = () => {
    const words = filter.value.trim().toLowerCase();
    const rows = shown.filter((fn) => !words || `${fn.name || ''} ${fn.id}`.toLowerCase().includes(words));
    return fill(holder, table('Functions', [
      ['Name', link],
      ['Latest version', (fn) => (fn.latest_version ? `v${fn.latest_version}` : '—')],
      ['Runtime', (fn) => (fn.runtime_id ? h('a', { href: `#/runtimes/${fn.runtime_id}` }, fn.runtime_id) : '—')],
      ['Created', (fn) => when(fn.created_at)],
    ], rows, words ? 'No function on this page matches.' : 'No functions yet.'));
  };
  filter.addEventListener('input', draw);
  return [
    h('h1', {}, 'Functions'),
    field('Filter this page by name or id', filter),
    pagedList('/functions', 'functions', (rows) => { shown = rows; return draw(); }, { label: 'Function pages' }),
  ];
}

const TABS = [
  ['overview', 'Overview', overview],
  ['versions', 'Versions', versions],
  ['diff', 'Diff', diff],
  ['aliases', 'Aliases', aliases],
  ['executions', 'Executions', (fn) => executionsView({ function_id: fn.id })],
  ['run', 'Run', run],
];

export function functionPage(id, tab, from, to) {
  const heading = h('h1', {}, 'Function');
  const body = h('div', {}, h('p', {}, 'Loading…'));
  const base = `#/functions/${encodeURIComponent(id)}`;
  const known = TABS.find(([key]) => key === tab) || TABS[0];
  get(`/functions/${encodeURIComponent(id)}`).then((fn) => {
    fill(heading, fn.name || fn.id);
    document.title = `${fn.name || fn.id} · ${known[1]} · Spinling console`;
    fill(body, known[2](fn, from, to));
  }, (error) => fill(body, errorMessage(error)));
  return [
    h('p', { class: 'crumbs' }, h('a', { href: '#/functions' }, 'Functions')),
    heading,
    h('nav', { class: 'tabs', 'aria-label': 'Function sections' }, h('ul', {},
      TABS.map(([key, label]) => h('li', {}, h('a', { href: `${base}/${key}`, 'aria-current': key === known[0] ? 'page' : null }, label))))),
    body,
  ];
}

function megabytes(bytes) {
  return `${Math.round(bytes / 1048576)} MiB`;
}

/** Saves a package (fetched with the token, so it works behind Keystone too). */
async function download(path, filename) {
  const url = URL.createObjectURL(await blob(path));
  const anchor = h('a', { href: url, download: filename });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function settings(thing) {
  return [
    ['Entry', thing.entry],
    ['CPU', thing.cpu !== undefined ? `${thing.cpu} millicpu` : null],
    ['Memory', thing.memory_size !== undefined ? megabytes(thing.memory_size) : null],
    ['Timeout', thing.timeout !== undefined ? `${thing.timeout} s` : null],
    ['Package MD5', thing.code && thing.code.md5sum ? h('code', {}, thing.code.md5sum) : null],
  ];
}

function overview(fn) {
  const path = `/functions/${encodeURIComponent(fn.id)}`;
  return [
    h('h2', {}, 'Overview'),
    details([
      ['ID', h('code', {}, fn.id)],
      ['Description', fn.description],
      ['Runtime', fn.runtime_id ? h('a', { href: `#/runtimes/${fn.runtime_id}` }, fn.runtime_id) : null],
      ['Code source', fn.code && fn.code.source],
      ...settings(fn),
      ['Latest version', fn.latest_version ? `v${fn.latest_version}` : 'none'],
      ['Executions of the current code', String(fn.count ?? 0)],
      ['Created', when(fn.created_at)],
      ['Updated', when(fn.updated_at)],
    ]),
    h('div', { class: 'actions' },
      fn.code && fn.code.source === 'package'
        ? actionButton('Download package', () => download(`${path}?download=true`, `${fn.id}.zip`)) : null,
      actionButton('Delete function', async () => {
        await api('DELETE', path);
        announce(`Function ${fn.name || fn.id} deleted.`);
        location.hash = '#/functions';
      }, { confirmText: `Delete function ${fn.name || fn.id} and all its versions?`, kind: 'danger' })),
  ];
}

function versions(fn) {
  const path = `/functions/${encodeURIComponent(fn.id)}/versions`;
  const description = h('input', { name: 'description', maxlength: 255 });
  const list = pagedList(path, 'function_versions', (rows) => table(`Versions of ${fn.name || fn.id}`, [
    ['Version', (v) => `v${v.version_number}`],
    ['Description', (v) => v.description || ''],
    ['Executions', (v) => String(v.count)],
    ['Package MD5', (v) => h('code', { title: v.code && v.code.md5sum }, ((v.code && v.code.md5sum) || '').slice(0, 8))],
    ['Timeout', (v) => `${v.timeout} s`],
    ['Published', (v) => when(v.created_at)],
    ['Actions', (v) => [
      h('a', { href: `#/functions/${encodeURIComponent(fn.id)}/run/${v.version_number}`, class: 'button-link', 'aria-label': `Run v${v.version_number}` }, 'Run'),
      actionButton('Download', () => download(`${path}/${v.version_number}?download=true`, `${fn.id}_${v.version_number}.zip`),
        { name: `Download v${v.version_number}` }),
      actionButton('Delete', async () => {
        await api('DELETE', `${path}/${v.version_number}`);
        announce(`Version ${v.version_number} deleted.`);
        list.reload();
      }, { confirmText: `Delete version ${v.version_number}?`, name: `Delete v${v.version_number}`, kind: 'danger' }),
    ]],
  ], rows, 'No versions yet: publish the current code.'), { label: 'Version pages' });
  return [
    h('h2', {}, 'Versions'),
    versionNumbers(fn),
    form('Publish a version', [
      h('p', {}, 'Publishes the current code (MD5 ', h('code', {}, (fn.code && fn.code.md5sum) || 'none'),
        ') as the next version; refused if the code changed since this page was loaded.'),
      field('Description', description),
    ], 'Publish version', async () => {
      const body = { description: description.value };
      if (fn.code && fn.code.md5sum) body.md5sum = fn.code.md5sum;
      const version = await api('POST', path, body);
      description.value = '';
      announce(`Published version ${version.version_number}.`);
      list.reload();
    }),
    list,
  ];
}

async function versionOptions(fn) {
  const rows = await all(`/functions/${encodeURIComponent(fn.id)}/versions`, 'function_versions');
  return rows.map((v) => v.version_number);
}

function diff(fn, from, to) {
  const out = h('div');
  const path = `/functions/${encodeURIComponent(fn.id)}/versions`;
  versionOptions(fn).then((numbers) => {
    const choices = [[0, 'current code'], ...numbers.map((n) => [n, `v${n}`])];
    const last = numbers[numbers.length - 1] ?? 0;
    const fromSelect = select('from', choices, from ?? (numbers.length > 1 ? numbers[numbers.length - 2] : last));
    const toSelect = select('to', choices, to ?? (numbers.length > 1 ? last : 0));
    const result = h('div', { class: 'diff' });
    fill(out, form('Compare two versions', [field('From', fromSelect), field('To', toSelect)], 'Compare', async () => {
      location.hash = `#/functions/${encodeURIComponent(fn.id)}/diff/${fromSelect.value}/${toSelect.value}`;
    }), result);
    if (from === undefined || to === undefined) return;
    api('GET', `${path}/${from}/diff/${to}`).then((change) => {
      const files = table(`Files changed from ${versionName(from)} to ${versionName(to)}`, [
        ['Path', (f) => h('code', {}, f.path)],
        ['Change', (f) => h('span', { class: `change ${f.change}` }, f.change)],
        ['Size before', (f) => (f.size_from ?? '—')],
        ['Size after', (f) => (f.size_to ?? '—')],
      ], change.files, 'No file changed.');
      const fields = Object.entries(change.settings || {});
      const setting = table(`Settings changed from ${versionName(from)} to ${versionName(to)}`, [
        ['Setting', ([name]) => name],
        ['Before', ([, value]) => JSON.stringify(value.from)],
        ['After', ([, value]) => JSON.stringify(value.to)],
      ], fields, 'No setting changed.');
      fill(result, h('h3', {}, `${versionName(from)} → ${versionName(to)}`), files, setting);
    }, (error) => fill(result, errorMessage(error)));
  }, (error) => fill(out, errorMessage(error)));
  return [h('h2', {}, 'Diff'), out];
}

/** Each version's numbers over the last day (GET /functions/{id}/stats). */
function versionNumbers(fn) {
  const out = h('div', {}, h('p', {}, 'Loading numbers…'));
  const rate = (r) => (r === null || r === undefined ? '—' : percent(r));
  const seconds = (s) => (s === null || s === undefined ? '—' : `${Math.round(s * 1000)} ms`);
  get(`/functions/${encodeURIComponent(fn.id)}/stats`).then((stats) => fill(out, table('Numbers of the last 24 hours, per version', [
    ['Version', (v) => versionName(v.function_version)],
    ['Executions', (v) => String(v.executions)],
    ['Failures', (v) => String(v.failures)],
    ['Failure rate', (v) => rate(v.failure_rate)],
    ['Duration p50', (v) => seconds(v.duration.p50)],
    ['p95', (v) => seconds(v.duration.p95)],
    ['p99', (v) => seconds(v.duration.p99)],
  ], stats.versions, 'No executions in the last 24 hours.')), (error) => fill(out, errorMessage(error)));
  return out;
}

function aliases(fn) {
  const out = h('div', {}, h('p', {}, 'Loading…'));
  const draw = async () => {
    try {
      const [numbers, rows] = await Promise.all([versionOptions(fn), all('/aliases', 'function_aliases')]);
      const mine = rows.filter((alias) => alias.function_id === fn.id);
      const choices = [[0, 'current code'], ...numbers.map((n) => [n, `v${n}`])];
      fill(out, mine.length ? mine.map((alias) => aliasCard(alias, numbers, choices, draw)) : h('p', { class: 'empty' }, 'No aliases yet.'),
        createAlias(fn, choices, draw));
    } catch (error) {
      fill(out, errorMessage(error));
    }
  };
  draw();
  return [h('h2', {}, 'Aliases'), out];
}

function aliasCard(alias, numbers, choices, redraw) {
  const path = `/aliases/${encodeURIComponent(alias.name)}`;
  const update = async (body, message) => {
    await api('PUT', path, body);
    announce(message);
    await redraw();
  };
  const own = select('function_version', choices, alias.function_version);
  const weights = numbers.map((n) => {
    const current = (alias.routing || {})[String(n)];
    return [n, h('input', {
      type: 'number', name: `weight_${n}`, min: 0, max: 99.9, step: 0.1, inputmode: 'decimal',
      value: current ? String(Math.round(current * 1000) / 10) : '0',
    })];
  });
  const editor = form(`Routing of ${alias.name}`, [
    field('Own version (takes the rest)', own),
    h('fieldset', {}, h('legend', {}, 'Share of other versions, in %'),
      weights.map(([n, input]) => field(`v${n}`, input))),
  ], 'Save routing', async () => {
    const routing = {};
    for (const [n, input] of weights) {
      const share = Number(input.value);
      if (share > 0 && String(n) !== own.value) routing[String(n)] = share / 100;
    }
    await update({ function_version: Number(own.value), routing }, `Alias ${alias.name} routing saved.`);
  });
  const pointers = numbers.filter((n) => n !== alias.function_version || Object.keys(alias.routing || {}).length)
    .map((n) => actionButton(`Point to v${n}`, () => update({ function_version: n, routing: {} }, `Alias ${alias.name} now points to v${n}.`),
      { name: `Point ${alias.name} to v${n}` }));
  return h('section', { class: 'card', 'aria-label': `Alias ${alias.name}` },
    h('h3', {}, alias.name),
    h('p', {}, `Points to ${versionName(alias.function_version)}`, alias.description ? ` · ${alias.description}` : ''),
    weightBar(alias),
    h('div', { class: 'actions' }, pointers,
      actionButton('Delete alias', async () => {
        await api('DELETE', path);
        announce(`Alias ${alias.name} deleted.`);
        await redraw();
      }, { confirmText: `Delete alias ${alias.name}?`, name: `Delete alias ${alias.name}`, kind: 'danger' })),
    h('details', {}, h('summary', {}, `Edit weights of ${alias.name}`), editor),
    rolloutView(alias, numbers, redraw),
    historyView(alias));
}

/** The alias's rollout: follow a running one (polled), abort it, or start one. */
function rolloutView(alias, numbers, redraw) {
  const path = `/aliases/${encodeURIComponent(alias.name)}/rollout`;
  const out = h('section', { 'aria-label': `Rollout of ${alias.name}` }, h('p', {}, 'Loading rollout…'));
  let timer = null;
  const stop = () => { if (timer) clearTimeout(timer); timer = null; };
  onLeave(stop);
  const rate = (c) => (c.failure_rate === null ? 'no executions yet' : `${percent(c.failure_rate)} (${c.failures} of ${c.executions})`);
  const startForm = () => {
    const others = numbers.filter((n) => n !== alias.function_version);
    if (!others.length) return h('p', { class: 'empty' }, 'Publish another version to roll it out.');
    const to = select('to_version', others.map((n) => [n, `v${n}`]), others[others.length - 1]);
    const steps = h('input', { name: 'steps', value: '10, 50' });
    const stepSeconds = h('input', { type: 'number', name: 'step_seconds', min: 1, value: '300' });
    const maxRate = h('input', { type: 'number', name: 'max_failure_rate', min: 0, max: 99.9, step: 0.1, value: '5' });
    const minExecutions = h('input', { type: 'number', name: 'min_executions', min: 1, value: '50' });
    return form(`Start a rollout of ${alias.name}`, [
      field('To version', to), field('Steps, in % of the traffic', steps), field('Seconds per step', stepSeconds),
      field('Most failures, in %', maxRate), field('Fewest executions per step', minExecutions),
    ], 'Start rollout', async () => {
      await api('POST', path, {
        to_version: Number(to.value),
        steps: steps.value.split(',').map((s) => Number(s.trim())).filter((s) => s > 0),
        step_seconds: Number(stepSeconds.value),
        max_failure_rate: Number(maxRate.value) / 100,
        min_executions: Number(minExecutions.value),
      });
      announce(`Rollout of ${alias.name} started.`);
      await redraw();
    });
  };
  const draw = async () => {
    stop();
    let rollout = null;
    try {
      rollout = await get(path);
    } catch (error) {
      if (error.status !== 404) return fill(out, errorMessage(error));
    }
    const running = rollout && rollout.status === 'running';
    const shown = rollout ? [
      h('h4', {}, `Rollout to v${rollout.to_version}: ${rollout.status.replace('_', ' ')}`),
      details([
        ['Step', `${rollout.step} of ${rollout.steps.length} (${rollout.weight} % to v${rollout.to_version})`],
        ['Canary failure rate', rate(rollout.current_step.canary)],
        ['Stable failure rate', rate(rollout.current_step.stable)],
        ['Last decision', rollout.reason],
        ['Next', rollout.next],
      ]),
      running ? weightBar({ name: alias.name, function_version: rollout.from_version, routing: { [rollout.to_version]: rollout.weight / 100 } }) : null,
      running ? actionButton('Abort rollout', async () => {
        await api('DELETE', path);
        announce(`Rollout of ${alias.name} aborted.`);
        await redraw();
      }, { confirmText: `Abort the rollout of ${alias.name}?`, name: `Abort rollout of ${alias.name}`, kind: 'danger' }) : null,
    ] : [h('p', { class: 'empty' }, 'No rollout yet.')];
    fill(out, h('h3', {}, `Rollout of ${alias.name}`), shown, running ? null : startForm());
    if (running) timer = setTimeout(() => { if (out.isConnected) draw(); }, 3000);
    return null;
  };
  draw();
  return out;
}

/** The alias's history: every change of its version or routing. */
function historyView(alias) {
  const path = `/aliases/${encodeURIComponent(alias.name)}/history`;
  const target = (t) => (t ? `${versionName(t.function_version)}${Object.keys(t.routing || {}).length ? ` ${JSON.stringify(t.routing)}` : ''}` : '—');
  return h('details', {}, h('summary', {}, `History of ${alias.name}`),
    pagedList(path, 'history', (rows) => table(`History of ${alias.name}`, [
      ['When', (e) => when(e.created_at)],
      ['Why', (e) => e.cause.replace('_', ' ')],
      ['Who', (e) => (e.project_id ? `${e.project_id}${e.user_id ? ` (user ${e.user_id})` : ''}` : 'scheduler')],
      ['Before', (e) => target(e.before)],
      ['After', (e) => target(e.after)],
      ['Reason', (e) => e.reason || ''],
    ], rows, 'No changes yet.'), { label: `History pages of ${alias.name}` }));
}

function createAlias(fn, choices, redraw) {
  const name = h('input', { name: 'name', required: true, maxlength: 255 });
  const version = select('function_version', choices, choices.length > 1 ? choices[choices.length - 1][0] : 0);
  return h('section', { 'aria-label': 'New alias' }, h('h3', {}, 'New alias'),
    form('Create an alias', [field('Name', name), field('Version', version)], 'Create alias', async () => {
      await api('POST', '/aliases', { name: name.value, function_id: fn.id, function_version: Number(version.value) });
      announce(`Alias ${name.value} created.`);
      await redraw();
    }));
}

function run(fn, version) {
  const out = h('div');
  Promise.all([versionOptions(fn), all('/aliases', 'function_aliases')]).then(([numbers, rows]) => {
    const targets = [['version:0', 'current code'], ...numbers.map((n) => [`version:${n}`, `v${n}`]),
      ...rows.filter((a) => a.function_id === fn.id).map((a) => [`alias:${a.name}`, `alias ${a.name} (${shares(a).map(([v]) => versionName(v)).join(', ')})`])];
    const target = select('target', targets, `version:${version ?? numbers[numbers.length - 1] ?? 0}`);
    const input = h('textarea', { name: 'input', rows: 4, spellcheck: 'false' });
    const sync = h('input', { type: 'checkbox', name: 'sync', checked: true });
    const result = h('div', { class: 'run-result', 'aria-live': 'polite' });
    fill(out, form(`Run ${fn.name || fn.id}`, [
      field('What to run', target),
      field('Input (JSON or text)', input),
      h('div', { class: 'field check' }, sync, h('label', { for: sync.id = 'run-sync' }, 'Wait for the result')),
    ], 'Run', async () => {
      const [kind, value] = target.value.split(/:(.*)/s);
      const body = kind === 'alias' ? { function_alias: value } : { function_id: fn.id, function_version: Number(value) };
      if (input.value.trim()) body.input = input.value;
      body.sync = sync.checked;
      const execution = await api('POST', '/executions', body);
      fill(result, executionView(execution.id, execution));
    }), result);
  }, (error) => fill(out, errorMessage(error)));
  return [h('h2', {}, 'Run'), out];
}
