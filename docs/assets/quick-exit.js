/*
 * Quick exit ("Exit this page"), after the GOV.UK Design System component.
 *
 * - The button, or Shift pressed on its own three times within 5 seconds, leaves the handbook.
 * - Leaving hides the page at once, then replaces it with the exit site, so Back does not return.
 * - Moving between handbook pages also replaces the current history entry, so the handbook never
 *   holds more than one place in the Back list: after an exit, Back leaves it behind entirely.
 * - The button goes through the forms server when it serves the handbook (/forms/exit), which
 *   deletes this browser's drafts and clears its cookie and cache (forms_server/web/drafts.py).
 * - After an exit, a page reached with Back shows only "This page has expired".
 * Browser history itself cannot be erased from a web page; help/quick-exit explains that.
 */
(function () {
  "use strict";

  var PRESSES_TO_EXIT = 3;
  var PRESS_WINDOW_MS = 5000;
  var EXITED = "quick-exit-used";
  var store = {};
  try {
    store = window.sessionStorage; // may be turned off: the server has deleted the draft anyway
  } catch (error) {}

  function showExpired() {
    (document.querySelector("main") || document.body).innerHTML =
      '<div class="md-content__inner md-typeset"><h1>This page has expired</h1></div>';
  }

  if (store.getItem && store.getItem(EXITED)) {
    var visit = window.performance.getEntriesByType("navigation")[0];
    if (visit && visit.type === "back_forward") {
      showExpired();
    } else {
      store.removeItem(EXITED);
    }
  }

  var button = document.querySelector("[data-quick-exit-button]");
  var status = document.querySelector("[data-quick-exit-status]");
  if (!button) {
    return;
  }

  var presses = 0;
  var pressTimer = null;
  var lastKeyUpHadShift = false;

  function announce(message) {
    if (status) {
      status.textContent = message;
    }
  }

  function exitPage(event) {
    if (event) {
      event.preventDefault();
    }
    document.documentElement.classList.add("quick-exit--leaving");
    announce("Loading.");
    if (store.setItem) {
      store.setItem(EXITED, "1");
    }
    window.location.replace(button.href);
  }

  function resetPresses() {
    if (presses > 0) {
      announce("Exit this page expired.");
    }
    presses = 0;
    button.removeAttribute("data-presses");
  }

  function onKeyUp(event) {
    // Shift used to type a capital fires a keyup with shiftKey set first: ignore the Shift after it.
    if (event.key === "Shift" && !lastKeyUpHadShift) {
      presses += 1;
      button.setAttribute("data-presses", String(presses));
      window.clearTimeout(pressTimer);
      if (presses >= PRESSES_TO_EXIT) {
        exitPage(null);
        return;
      }
      var left = PRESSES_TO_EXIT - presses;
      announce("Shift, press " + left + " more " + (left === 1 ? "time" : "times") + " to exit.");
      pressTimer = window.setTimeout(resetPresses, PRESS_WINDOW_MS);
    } else if (event.key !== "Shift" && presses > 0) {
      window.clearTimeout(pressTimer);
      resetPresses();
    }
    lastKeyUpHadShift = event.shiftKey;
  }

  function isHandbookNavigation(event, link) {
    if (event.defaultPrevented || event.button !== 0) return false;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return false;
    if (link.target && link.target !== "_self") return false;
    if (link.hasAttribute("download") || link === button) return false;
    if (link.origin !== window.location.origin) return false;
    // A link within the same page (a heading) scrolls; it does not navigate.
    var samePage = link.pathname === window.location.pathname && link.search === window.location.search;
    return !(samePage && link.hash);
  }

  function onClick(event) {
    var link = event.target instanceof Element ? event.target.closest("a[href]") : null;
    if (link && isHandbookNavigation(event, link)) {
      event.preventDefault();
      window.location.replace(link.href);
    }
  }

  // A page restored from the back/forward cache must not stay hidden, nor show what it held.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && store.getItem && store.getItem(EXITED)) {
      showExpired();
    }
    document.documentElement.classList.remove("quick-exit--leaving");
  });
  button.addEventListener("click", exitPage);
  document.addEventListener("keyup", onKeyUp, true);
  document.addEventListener("click", onClick);
})();

/*
 * The navigation drawer on a phone, for the keyboard (here, so the first view costs no extra
 * request). Material opens it with a label for a hidden checkbox: here a real button takes the
 * label's place, controls the drawer (aria-controls), says whether it is open (aria-expanded,
 * kept true to the checkbox however it changes: the button, the overlay, Escape), and Escape
 * closes it and returns to the button. Without JavaScript the checkbox itself is the keyboard's
 * way in (handbook.css).
 */
(function () {
  "use strict";

  var toggle = document.getElementById("__drawer");
  var label = document.querySelector('.md-header label[for="__drawer"]');
  var drawer = document.querySelector(".md-sidebar--primary");
  if (!toggle || !label || !drawer) {
    return;
  }
  if (!drawer.id) {
    drawer.id = "handbook-drawer";
  }
  var button = document.createElement("button");
  button.type = "button";
  button.className = label.className + " handbook-menu";
  button.setAttribute("aria-label", "Menu");
  button.setAttribute("aria-controls", drawer.id);
  var icon = label.querySelector("svg");
  if (icon) {
    var drawn = icon.cloneNode(true);
    drawn.setAttribute("aria-hidden", "true");
    button.appendChild(drawn);
  }
  label.parentNode.insertBefore(button, label);
  label.hidden = true;

  function show() {
    button.setAttribute("aria-expanded", toggle.checked ? "true" : "false");
  }

  function set(open) {
    toggle.checked = open;
    // Material listens for this to lock the page's scrolling while the drawer is open.
    toggle.dispatchEvent(new Event("change"));
    show();
  }

  show();
  toggle.addEventListener("change", show);
  button.addEventListener("click", function () {
    set(!toggle.checked);
    if (toggle.checked) {
      var links = drawer.querySelectorAll("a[href]");
      for (var i = 0; i < links.length; i += 1) {
        if (links[i].getClientRects().length) {
          links[i].focus();
          break;
        }
      }
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && toggle.checked) {
      set(false);
      button.focus();
    }
  });
})();
