/* Dark mode on the forms' pages, as in the handbook: the reader's saved choice, else the device's.
 * Runs first thing in <body>, before anything is drawn, so the page never shows (or animates
 * between) the wrong colours. Without JavaScript: light. */
(function () {
  "use strict";
  var scheme = window.matchMedia("(prefers-color-scheme: dark)").matches ? "slate" : "default";
  try {
    // The handbook (Material) keeps the reader's choice under this key.
    var saved = JSON.parse(window.localStorage.getItem("/.__palette") || "null");
    if (saved && saved.color && saved.color.scheme) {
      if (saved.color.media !== "(prefers-color-scheme)") {
        scheme = saved.color.scheme;
      }
    }
  } catch (error) {
    // Storage blocked or unreadable: keep the device's setting.
  }
  document.body.setAttribute("data-md-color-scheme", scheme);
})();
