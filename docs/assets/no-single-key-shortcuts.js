/* The theme moves to the next or previous page on n, p, "." and ",", and offers no way to turn
   that off. WCAG 2.1.4 (level A): a single key must not act on its own, because a tremor or a
   word said to speech input would move a reader away from what they were reading. This stops
   those keys before the theme sees them, unless they are typed into a field. */
(function () {
  "use strict";
  var PAGE_KEYS = ["n", "p", ".", ","];

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  window.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.altKey || event.metaKey || typing(event.target)) {
      return;
    }
    if (PAGE_KEYS.indexOf(event.key) !== -1) {
      event.stopImmediatePropagation();
    }
  }, true);
})();
