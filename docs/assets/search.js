/*
 * Find-as-you-type search, loaded only by the search page, so no other page pays for it.
 *
 * It reads search.json at the site's root (written by the MkDocs hook, or by Zensical) and
 * ranks exactly as forms_server/search.py does for the no-JavaScript page, GET /search?q=:
 * - a section matches when every word typed starts a word of its heading or text;
 * - a match in the heading counts ten times a match in the text; ties keep the handbook's order.
 * Results are built as text nodes (never as HTML), and the count is announced politely once the
 * member pauses typing. The query is never put in the address, so it stays out of the history.
 */
(function () {
  "use strict";

  var MOST_RESULTS = 20;
  var SNIPPET_WORDS = 24;
  var ANNOUNCE_AFTER_MS = 600;
  var WORD = /[0-9a-z]+(?:'[0-9a-z]+)*/g;

  var form = document.querySelector("[data-handbook-search]");
  var status = document.querySelector("[data-search-status]");
  var list = document.querySelector("[data-search-results]");
  if (!form || !status || !list || !window.fetch) return;
  var input = form.querySelector("input[name=q]");
  var root = new URL("../", document.baseURI); // the search page sits one level down
  var sections = null;
  var announceTimer = null;

  function words(text) {
    return text.toLowerCase().replace(/\u2019/g, "'").match(WORD) || [];
  }

  function plainText(text) {
    var parsed = new DOMParser().parseFromString(text.replace(/<[^>]+>/g, " "), "text/html");
    return (parsed.body.textContent || "").split(/\s+/).filter(Boolean).join(" ");
  }

  function toSections(items) {
    var pageTitle = "";
    var found = [];
    items.forEach(function (item) {
      var title = plainText(String(item.title));
      var location = String(item.location);
      if (location.indexOf("#") < 0) pageTitle = title;
      found.push({ location: location, title: title, text: plainText(String(item.text)), pageTitle: pageTitle });
    });
    return found;
  }

  function unique(list) {
    return list.filter(function (item, index) { return list.indexOf(item) === index; });
  }

  function countStarting(term, candidates) {
    var count = 0;
    candidates.forEach(function (word) { if (word.indexOf(term) === 0) count += 1; });
    return count;
  }

  function startsAny(token, terms) {
    return words(token).some(function (word) {
      return terms.some(function (term) { return word.indexOf(term) === 0; });
    });
  }

  function snippet(text, terms) {
    var tokens = text.split(" ").filter(Boolean);
    var first = 0;
    for (var index = 0; index < tokens.length; index += 1) {
      if (startsAny(tokens[index], terms)) { first = index; break; }
    }
    var start = Math.max(0, first - 4);
    var chosen = tokens.slice(start, start + SNIPPET_WORDS).join(" ");
    return (start ? "… " : "") + chosen + (start + SNIPPET_WORDS < tokens.length ? " …" : "");
  }

  function search(query) {
    var terms = unique(words(query));
    if (!terms.length) return [];
    var results = [];
    sections.forEach(function (section, order) {
      var titleWords = words(section.title);
      var textWords = words(section.text);
      var score = 0;
      for (var index = 0; index < terms.length; index += 1) {
        var found = 10 * countStarting(terms[index], titleWords) + countStarting(terms[index], textWords);
        if (!found) return;
        score += found;
      }
      results.push({ section: section, score: score, order: order, snippet: snippet(section.text, terms) });
    });
    results.sort(function (a, b) { return b.score - a.score || a.order - b.order; });
    return results.slice(0, MOST_RESULTS);
  }

  // The text, with each word that starts a typed word inside <mark>: text nodes only.
  function appendMarked(parent, text, terms) {
    text.split(/([\w'’]+)/).forEach(function (piece) {
      if (!piece) return;
      if (startsAny(piece, terms)) {
        var mark = document.createElement("mark");
        mark.textContent = piece;
        parent.appendChild(mark);
      } else {
        parent.appendChild(document.createTextNode(piece));
      }
    });
  }

  function countText(count, query) {
    return count + (count === 1 ? " result" : " results") + " for " + query;
  }

  function show(query, announceNow) {
    var terms = words(query);
    var results = search(query);
    list.textContent = "";
    results.forEach(function (result) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = new URL(result.section.location, root).href;
      appendMarked(link, result.section.title, terms);
      item.appendChild(link);
      if (result.section.pageTitle && result.section.pageTitle !== result.section.title) {
        var page = document.createElement("span");
        page.className = "handbook-search__page";
        page.textContent = "in " + result.section.pageTitle;
        item.appendChild(page);
      }
      var text = document.createElement("p");
      appendMarked(text, result.snippet, terms);
      item.appendChild(text);
      list.appendChild(item);
    });
    list.hidden = results.length === 0;
    // Announced once typing pauses, so a screen reader is not interrupted at every key.
    window.clearTimeout(announceTimer);
    var message = terms.length ? countText(results.length, query.trim()) : "";
    if (terms.length && !results.length) message += ". Try a shorter word, or another word with the same meaning.";
    if (announceNow) status.textContent = message;
    else announceTimer = window.setTimeout(function () { status.textContent = message; }, ANNOUNCE_AFTER_MS);
  }

  fetch(new URL("search.json", root).href, { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) throw new Error("no index");
      return response.json();
    })
    .then(function (index) {
      sections = toSections(index.items || []);
      form.setAttribute("data-search-ready", "");
      input.addEventListener("input", function () { show(input.value, false); });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        show(input.value, true);
      });
      if (input.value) show(input.value, true);
    })
    .catch(function () {
      // Without the index the form still works: it goes to the server's search page.
    });
})();
