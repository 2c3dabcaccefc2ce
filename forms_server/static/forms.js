/*
 * The forms' progressive enhancements, after GOV.UK Frontend. Every page works without this
 * file: it only adds to what the server already sends.
 */
(function () {
  "use strict";

  /*
   * A link to a field (the error summary's, or a Change link on the check page, which opens
   * the form at #field) puts focus on the field; the browser scrolls only the field itself into
   * view, so its question, hint and error were left under the sticky header. As GOV.UK's error
   * summary does, show the question first, then focus the field without scrolling again. Our
   * questions keep their label (or legend), hint and error at the top of their .form-group.
   */
  var header = document.querySelector(".md-header");
  // A little room under the header, as scroll-padding-top gives without JavaScript.
  var ROOM = 12;

  // Scrolling to the field (ours, or the browser's own scroll to a #fragment, which it may
  // repeat as the page loads) stops this far below the top of the screen: room for the header
  // and for everything above the field in its question.
  function makeRoomAbove(field) {
    var group = field.closest(".form-group") || field;
    var headerHeight = header ? header.getBoundingClientRect().height : 0;
    var above = field.getBoundingClientRect().top - group.getBoundingClientRect().top;
    field.style.scrollMarginTop = Math.ceil(above + headerHeight + ROOM) + "px";
  }

  function showQuestion(field) {
    makeRoomAbove(field);
    field.scrollIntoView({ block: "start" });
  }

  function fieldFor(hash) {
    var id = hash ? decodeURIComponent(hash.slice(1)) : "";
    var field = id ? document.getElementById(id) : null;
    return field && /^(INPUT|TEXTAREA|SELECT)$/.test(field.tagName) ? field : null;
  }

  var summary = document.querySelector("[data-error-summary]");
  if (summary) {
    summary.addEventListener("click", function (event) {
      var link = event.target instanceof Element ? event.target.closest("a[href^='#']") : null;
      var field = link ? fieldFor(link.hash) : null;
      if (!field) return;
      event.preventDefault();
      showQuestion(field);
      field.focus({ preventScroll: true });
    });
  }

  // Opened at #field (a Change link): the browser has scrolled to the field; show its question.
  function showLinkedQuestion() {
    var field = fieldFor(window.location.hash);
    if (!field) return;
    showQuestion(field);
    if (document.activeElement !== field) field.focus({ preventScroll: true });
  }
  showLinkedQuestion();
  // The browser may scroll to the fragment again once the page has loaded.
  window.addEventListener("load", showLinkedQuestion);

  /*
   * A choice that reveals a question (GOV.UK's conditional reveal, shown and hidden by
   * forms.css): it controls that question and says whether it is shown, as GOV.UK's radios do.
   */
  var revealing = document.querySelectorAll("input[type='radio'][data-aria-controls]");

  function syncReveal(radio) {
    radio.setAttribute("aria-expanded", radio.checked ? "true" : "false");
  }

  function syncAllReveals() {
    Array.prototype.forEach.call(revealing, syncReveal);
  }

  Array.prototype.forEach.call(revealing, function (radio) {
    var target = radio.getAttribute("data-aria-controls");
    if (!document.getElementById(target)) return;
    radio.setAttribute("aria-controls", target);
    radio.removeAttribute("data-aria-controls");
  });
  revealing = document.querySelectorAll("input[type='radio'][aria-controls]");
  syncAllReveals();
  // Back restores the choices after the page has loaded.
  window.addEventListener("pageshow", syncAllReveals);
  document.addEventListener("change", function (event) {
    var changed = event.target;
    if (changed instanceof HTMLInputElement && changed.type === "radio") syncAllReveals();
  });
})();
