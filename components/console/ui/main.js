// The console's shell: the token field and the hash router (#/functions/<id>/versions, ...),
// so every page can be linked to.

import { token } from './api.js';
import { announce, fill, h, leave } from './dom.js';
import { functionList, functionPage } from './functions.js';
import {
  executionList, executionPage, jobList, jobPage, runtimeList, runtimePage, webhookList, webhookPage,
} from './resources.js';

const routes = [
  [/^#?\/?$/, () => functionList()],
  [/^#\/functions$/, () => functionList()],
  // #/functions/<id>/<tab>, with the versions it shows: /diff/<from>/<to>, /run/<version>.
  [/^#\/functions\/([^/]+)(?:\/([a-z]+))?(?:\/(\d+))?(?:\/(\d+))?$/, (id, tab, a, b) => functionPage(id, tab || 'overview', a, b)],
  [/^#\/runtimes$/, () => runtimeList()],
  [/^#\/runtimes\/([^/]+)$/, (id) => runtimePage(id)],
  [/^#\/webhooks$/, () => webhookList()],
  [/^#\/webhooks\/([^/]+)$/, (id) => webhookPage(id)],
  [/^#\/jobs$/, () => jobList()],
  [/^#\/jobs\/([^/]+)$/, (id) => jobPage(id)],
  [/^#\/executions$/, () => executionList()],
  [/^#\/executions\/([^/]+)$/, (id) => executionPage(id)],
];

const main = document.getElementById('main');

function route() {
  leave();
  const hash = location.hash;
  let view = null;
  for (const [pattern, render] of routes) {
    const match = hash.match(pattern);
    if (match) {
      view = render(...match.slice(1).map((part) => (part === undefined ? undefined : decodeURIComponent(part))));
      break;
    }
  }
  if (!view) view = [h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', h('a', { href: '#/functions' }, 'Go to functions'))];
  fill(main, view);
  const section = hash.split('/')[1] || 'functions';
  for (const link of document.querySelectorAll('header nav a')) {
    if (link.getAttribute('href') === `#/${section}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const title = main.querySelector('h1');
  document.title = `${title ? title.textContent : 'Spinling'} · Spinling console`;
  main.focus({ preventScroll: true });
}

const tokenField = document.getElementById('token');
tokenField.value = token.get();
document.getElementById('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  token.set(tokenField.value.trim());
  announce(tokenField.value.trim() ? 'Token saved for this browser session.' : 'Token cleared.');
  route();
});

window.addEventListener('hashchange', route);
route();
