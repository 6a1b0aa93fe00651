// Starts the web app. A file of its own (not inline in the page) so that the page's
// Content-Security-Policy can forbid inline scripts.
import init from './socklab_web.js';
// The module's exports stay reachable for tools (the benchmark reads its memory size).
init().then((wasm) => { window.socklabWasm = wasm; }).catch((e) => {
  document.body.textContent = 'socklab could not start its web app: ' + e;
});
