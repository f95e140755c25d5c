// Starts ReDoc on /redoc. A file rather than an inline script, so the page runs
// under script-src 'self'. ReDoc writes its styles into <style> elements at run
// time; it tags them with the nonce that this script element carries, which the
// page's CSP allows in style-src (no 'unsafe-inline').
"use strict";

(() => {
  const nonce = document.currentScript.nonce;
  const root = document.getElementById("redoc");
  window.Redoc.init(root.dataset.specUrl, { nonce }, root);
})();
