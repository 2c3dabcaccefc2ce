/*
 * Keeps a draft's answers while its page is open (WCAG 2.2.1, Timing Adjustable).
 *
 * The server deletes a draft once nobody has used it for the group's idle time (the page says
 * how long). Someone reading the check page, or rewriting an answer after Change, is using it:
 * so while this page is open the script asks the server for the page again (HEAD, nothing
 * sent or shown), which counts as a use. Closing the tab, or leaving the page, stops it, and
 * the idle time runs again. The answers are already on this screen, so keeping them on the
 * server while it is open shows nobody anything more.
 *
 * Without JavaScript, the page says how long the answers are kept.
 */
(function () {
  "use strict";

  var marker = document.querySelector("[data-keep-answers]");
  if (!marker || !window.fetch) return;
  var minutes = Number(marker.getAttribute("data-keep-answers"));
  if (!(minutes > 0)) return;
  // Well inside the idle time, so one late timer (a background tab) still arrives in time.
  var every = Math.max(60, minutes * 60 / 4) * 1000;

  function keep() {
    fetch(window.location.href, { method: "HEAD", credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.text(); })
      .catch(function () {});
  }

  window.setInterval(keep, every);
  // A phone that froze the tab: ask at once when the member comes back to it.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") keep();
  });
})();
