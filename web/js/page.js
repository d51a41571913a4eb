// @ts-check
// What the bundled pages share (lobby, call, whiteboard, dashboard, watch): the header's navigation,
// the join form filled from the address (?room=&name=), and the join token. Not part of the
// client package: application pages have their own shell.
import { fetchDevToken } from "./signaling.js";

/** The pages, in navigation order: [path, label]. */
export const PAGES = /** @type {const} */ ([
  ["/", "Lobby"],
  ["/call", "Call"],
  ["/whiteboard", "Whiteboard"],
  ["/dashboard", "Dashboard"],
  ["/watch", "Watch"],
]);

/**
 * The element with this id (the pages' markup guarantees it exists).
 * @param {string} id
 * @returns {any}
 */
export const $ = (id) => document.getElementById(id);

/**
 * Fill the header's <nav> with links to every page, the current one marked.
 * @param {Element | null} [nav]
 * @param {string} [current] the path of this page
 */
export function renderNav(nav = document.querySelector("header nav"), current = window.location.pathname) {
  if (!nav) return;
  nav.replaceChildren(...PAGES.map(([path, label]) => {
    const link = document.createElement("a");
    link.href = path;
    link.textContent = label;
    if (path === current) link.setAttribute("aria-current", "page");
    return link;
  }));
}

/**
 * Fill the inputs named in `ids` from the address's query (?room=demo&name=Ada).
 * @param {string[]} [ids]
 * @returns {URLSearchParams} the query, for page-specific fields
 */
export function prefillFromAddress(ids = ["room", "name"]) {
  const params = new URLSearchParams(window.location.search);
  for (const id of ids) {
    const value = params.get(id);
    if (value) $(id).value = value;
  }
  return params;
}

/**
 * The token to join with: the one pasted in the #token field, else a dev server's.
 * @param {string} room
 * @param {string} name
 * @returns {Promise<string>}
 */
export async function joinToken(room, name) {
  const pasted = $("token").value.trim();
  return pasted || (await fetchDevToken(room, name)).token;
}

renderNav();
