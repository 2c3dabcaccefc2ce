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

  /*
   * GOV.UK's character count, for each long answer (the server still enforces the limit).
   * Under the box, a count that follows every key (hidden from screen readers), and a polite
   * live region that says the same once typing pauses, so a screen reader is not interrupted
   * at every key. The static "You can enter up to N characters" stays the box's description,
   * visually hidden, as GOV.UK keeps it.
   */
  function countMessage(left) {
    var count = Math.abs(left);
    var characters = count === 1 ? " character" : " characters";
    return left < 0
      ? "You have " + count + characters + " too many"
      : "You have " + count + characters + " remaining";
  }

  function characterCount(field) {
    var limit = Number(field.getAttribute("data-character-count"));
    var info = document.getElementById(field.id + "-info");
    if (!(limit > 0) || !info) return;
    var group = field.closest(".form-group");
    var serverError = group && group.querySelector(".error-message");

    var visible = document.createElement("div");
    visible.className = "hint character-count__message";
    visible.setAttribute("aria-hidden", "true");
    visible.setAttribute("data-character-count-message", field.id);
    var spoken = document.createElement("div");
    spoken.className = "visually-hidden";
    spoken.setAttribute("aria-live", "polite");
    spoken.setAttribute("data-character-count-status", field.id);
    field.insertAdjacentElement("afterend", spoken);
    field.insertAdjacentElement("afterend", visible);
    info.classList.add("visually-hidden");

    var lastInput = null;
    var lastSpoken = null;
    var checker = null;

    function showCount() {
      var left = limit - field.value.length;
      visible.textContent = countMessage(left);
      visible.classList.toggle("error-message", left < 0);
      visible.classList.toggle("hint", left >= 0);
      if (!serverError) field.classList.toggle("input--error", left < 0);
    }

    function speakCount() {
      lastSpoken = field.value;
      spoken.textContent = countMessage(limit - field.value.length);
    }

    field.addEventListener("input", function () {
      showCount();
      lastInput = Date.now();
    });
    // While the box has focus, speak the count once a second at most, after a pause in typing.
    field.addEventListener("focus", function () {
      checker = window.setInterval(function () {
        if ((!lastInput || Date.now() - 500 >= lastInput) && field.value !== lastSpoken) {
          speakCount();
        }
      }, 1000);
    });
    field.addEventListener("blur", function () {
      window.clearInterval(checker);
    });
    // Back restores what was typed after the page has loaded.
    window.addEventListener("pageshow", function () {
      showCount();
      speakCount();
    });
    showCount();
    speakCount();
  }

  Array.prototype.forEach.call(document.querySelectorAll("textarea[data-character-count]"), characterCount);
})();
