/**
 * The isomorphic client in a page: a bundler (esbuild, in server.ts) picks
 * wsconn's browser build for the same client.ts. The page adds the numbers
 * of its query string (`?1&2&3`) through the server it was loaded from and
 * shows the result.
 */
import { sum } from './client.js';

/** The little of the DOM this page touches (the project typechecks without the DOM library). */
declare const document: { body: { textContent: string | null } };
declare const location: { host: string; search: string };

const numbers = location.search.slice(1).split('&').filter(Boolean).map(Number);
sum(`ws://${location.host}/sum`, numbers).then(
  (total) => (document.body.textContent = `sum: ${total}`),
  (err: unknown) => (document.body.textContent = `error: ${String(err)}`),
);
