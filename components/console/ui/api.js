// The API on this origin: every call sends the session's token (if any) as X-Auth-Token and
// turns an error into an ApiError worded as the API words it (its faultstring).

const TOKEN_KEY = 'spinling.token';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || '',
  set(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function send(method, path, body) {
  const headers = {};
  const auth = token.get();
  if (auth) headers['X-Auth-Token'] = auth;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch('/v1' + path, { method, headers, body: payload });
  if (!response.ok) {
    const text = await response.text();
    let message = text || response.statusText;
    try {
      message = JSON.parse(text).faultstring || message;
    } catch {
      // Not JSON: the text as it came.
    }
    throw new ApiError(response.status, message);
  }
  return response;
}

/** JSON of a call (null for 204). */
export async function api(method, path, body) {
  const response = await send(method, path, body);
  return response.status === 204 ? null : response.json();
}

export const get = (path) => api('GET', path);
export const text = async (path) => (await send('GET', path)).text();
export const blob = async (path) => (await send('GET', path)).blob();

/** One page of a list: its rows under `key`, and the marker of the next page (or null). */
export async function page(path, key, { limit = 50, marker = null, query = {} } = {}) {
  const params = new URLSearchParams(query);
  params.set('limit', String(limit));
  if (marker !== null) params.set('marker', String(marker));
  const data = await get(`${path}?${params}`);
  const next = data.next ? new URL(data.next).searchParams.get('marker') : null;
  return { rows: data[key], next };
}

/** Every row of a list, page by page (for small lists the console joins, such as aliases). */
export async function all(path, key, query = {}) {
  const rows = [];
  let marker = null;
  do {
    const result = await page(path, key, { limit: 1000, marker, query });
    rows.push(...result.rows);
    marker = result.next;
  } while (marker !== null);
  return rows;
}
