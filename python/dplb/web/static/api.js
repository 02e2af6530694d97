// The management API as the pages use it: every call carries the signed-in token as
// `Authorization: Bearer`, which the browser never attaches by itself (unlike a cookie),
// so no other site can make this browser write to the node.

const TOKEN_KEY = "dplb.token";
export const API = "/api/v1";

export class ApiError extends Error {
  // `errors`: [{path, reason}] as the API gives them (field paths such as body.reals[1].port).
  constructor(status, errors) {
    super(errors.map((e) => (e.path ? `${e.path}: ${e.reason}` : e.reason)).join("; "));
    this.status = status;
    this.errors = errors;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

// Called with the error when the node answers 401: the token went away or was changed.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

async function call(method, path, { body, query, bearer } = {}) {
  const url = new URL(API + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const headers = { Accept: "application/json" };
  const auth = bearer ?? token.get();
  if (auth) headers.Authorization = `Bearer ${auth}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (err) {
    throw new ApiError(0, [{ path: "", reason: `the node cannot be reached (${err.message})` }]);
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const errors = data?.errors ?? [{ path: "", reason: data?.error ?? response.statusText }];
    const error = new ApiError(response.status, errors);
    if (response.status === 401 && bearer === undefined) onUnauthorized(error);
    throw error;
  }
  return data;
}

export const get = (path, query) => call("GET", path, { query });
export const post = (path, body) => call("POST", path, { body });
export const put = (path, body) => call("PUT", path, { body });
export const patch = (path, body) => call("PATCH", path, { body });
export const del = (path, query) => call("DELETE", path, { query });

// Signs in: asks the node who the token is; keeps the token only if it is valid.
export async function whoami(bearer) {
  return call("GET", "/whoami", { bearer });
}

// Paths of one service and one real; IPv6 addresses go in as they are, percent-encoded.
export function servicePath(svc) {
  return `/services/${encodeURIComponent(svc.vip)}/${svc.port}/${svc.protocol}`;
}

export function realPath(svc, real) {
  return `${servicePath(svc)}/reals/${encodeURIComponent(real.address)}/${real.port}`;
}

// `10.0.2.11:8080`, `[2001:db8::11]:8080`: the ids the API uses.
export function endpointId(address, port) {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}
