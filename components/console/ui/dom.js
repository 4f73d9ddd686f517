// DOM helpers. Every string goes in as a text node or an attribute value, never as HTML, so a
// function named `<img onerror=…>` shows as that text.

import { ApiError, page } from './api.js';

/** An element: h('a', { href: '#/x', onclick: f }, 'text', child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else if (name === 'value') el.value = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
/** A labelled form control: label text and the control, tied by a fresh id. */
export function field(label, control) {
  control.id = control.id || `f${++ids}`;
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
}

export function select(name, options, selected) {
  return h('select', { name },
    options.map(([value, label]) =>
      h('option', { value: String(value), selected: String(value) === String(selected) }, label)));
}

/** A term/description list of [term, value] pairs. */
export function details(pairs) {
  return h('dl', { class: 'details' },
    pairs.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value ?? '—')]));
}

/** A table with a caption and header cells; columns are [label, row => cell content]. */
export function table(caption, columns, rows, empty = 'None yet.') {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('table', {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, columns.map(([label]) => h('th', { scope: 'col' }, label)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, columns.map(([, cell]) => h('td', {}, cell(row)))))));
}

/** An error as the API worded it, announced to screen readers. */
export function errorMessage(error) {
  const words = error instanceof ApiError ? `${error.status}: ${error.message}` : String(error.message || error);
  return h('p', { class: 'error', role: 'alert' }, words);
}

/** Shows a short outcome in the status line. */
export function announce(message) {
  fill(document.getElementById('status'), message);
}

/**
 * A button running `action`; errors are shown beside it. A 403 (the caller may not do this)
 * also disables it, so the refused action is no longer offered.
 */
export function actionButton(label, action, { confirmText, name, kind } = {}) {
  const out = h('span', { class: 'action-error' });
  const button = h('button', {
    type: 'button', class: kind || null, 'aria-label': name || null,
    onclick: async () => {
      if (confirmText && !window.confirm(confirmText)) return;
      fill(out);
      button.disabled = true;
      try {
        await action();
        button.disabled = false;
      } catch (error) {
        fill(out, errorMessage(error));
        button.disabled = error instanceof ApiError && error.status === 403;
        if (button.disabled) button.title = error.message;
      }
    },
  }, label);
  return h('span', { class: 'action' }, button, out);
}

/** A form whose submit runs `action(formData)`, showing its errors in the form. */
export function form(label, controls, submitLabel, action) {
  const out = h('div', { class: 'form-error' });
  const el = h('form', {
    'aria-label': label,
    onsubmit: async (event) => {
      event.preventDefault();
      fill(out);
      const submit = el.querySelector('button[type=submit]');
      submit.disabled = true;
      try {
        await action(new FormData(el));
      } catch (error) {
        fill(out, errorMessage(error));
      } finally {
        submit.disabled = false;
      }
    },
  }, controls, h('button', { type: 'submit' }, submitLabel), out);
  return el;
}

/**
 * A paged list: `render(rows)` draws one page, fetched with the API's limit and marker;
 * Previous/Next walk the markers seen so far.
 */
export function pagedList(path, key, render, { limit = 50, query = {}, label = 'Pages' } = {}) {
  const body = h('div', { class: 'page' });
  const markers = [null];
  let at = 0;
  let next = null;
  const prev = h('button', { type: 'button', onclick: () => load(at - 1) }, 'Previous page');
  const nextButton = h('button', { type: 'button', onclick: () => load(at + 1) }, 'Next page');
  const where = h('span', { class: 'where' });
  async function load(index) {
    if (index > at) markers[index] = next;
    at = index;
    try {
      const result = await page(path, key, { limit, marker: markers[at], query });
      next = result.next;
      fill(body, render(result.rows));
      fill(where, `Page ${at + 1}`);
    } catch (error) {
      fill(body, errorMessage(error));
      next = null;
    }
    prev.disabled = at === 0;
    nextButton.disabled = next === null;
  }
  const root = h('div', {}, body, h('nav', { class: 'pager', 'aria-label': label }, prev, where, nextButton));
  root.reload = () => load(at);
  load(0);
  return root;
}

/** Percent of a weight, for people: 0.1 -> "10 %". */
export function percent(weight) {
  return `${Math.round(weight * 1000) / 10} %`;
}

/** An alias's routing as shares per version: the alias's own version takes the rest. */
export function shares(alias) {
  const routing = Object.entries(alias.routing || {}).map(([version, weight]) => [Number(version), weight]);
  const rest = 1 - routing.reduce((sum, [, weight]) => sum + weight, 0);
  return [[alias.function_version, rest], ...routing].sort((a, b) => a[0] - b[0]);
}

export function versionName(number) {
  return Number(number) === 0 ? 'current code' : `v${number}`;
}

/** The routing drawn as a bar: "v1 90 % │ v2 10 %", each segment as wide as its share. */
export function weightBar(alias) {
  const parts = shares(alias);
  const words = parts.map(([version, weight]) => `${versionName(version)} ${percent(weight)}`);
  const bar = h('div', { class: 'weights', role: 'img', 'aria-label': `Routing of ${alias.name}: ${words.join(', ')}` },
    parts.map(([version, weight], i) => {
      const segment = h('span', { class: `segment s${i % 4}` }, `${versionName(version)} ${percent(weight)}`);
      segment.style.flexGrow = String(weight);
      return segment;
    }));
  return h('div', { class: 'routing' }, bar, h('p', { class: 'weights-text' }, words.join(' │ ')));
}

export function when(timestamp) {
  return timestamp ? timestamp.replace('T', ' ').replace('Z', ' UTC') : '—';
}

const leaving = new Set();
/** Runs `stop` when the page is left (ends polls of live executions). */
export function onLeave(stop) {
  leaving.add(stop);
}
export function leave() {
  for (const stop of leaving) stop();
  leaving.clear();
}
