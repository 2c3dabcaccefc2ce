/*
 * Find-as-you-type search, loaded only by the search page, so no other page pays for it.
 *
 * It reads search.json at the site's root (written by the MkDocs hook, or by Zensical) and the
 * crisis words beside the help page, and ranks exactly as forms_server/handbook/search.py (and search_words.py) does
 * for the no-JavaScript page (POST /search):
 * - words are stemmed ("cameras" finds "camera"), and words like "my" left out;
 * - a section matches when every word typed starts a word of its heading or text; a word found
 *   nowhere is read as the words a typo away from it ("confidentail");
 * - if no section has every word, those with the most;
 * - a match in the heading counts ten times a match in the text; ties keep the handbook's order;
 * - a query that says someone may need help now ("suicidal", "self harm") puts Get help now
 *   first, and every empty result offers it.
 * Results are built as text nodes (never as HTML), and the count is announced politely once the
 * member pauses typing. The query is never put in the address, so it stays out of the history.
 */
(function () {
  "use strict";

  var MOST_RESULTS = 20;
  var SNIPPET_WORDS = 24;
  var ANNOUNCE_AFTER_MS = 600;
  var WORD = /[0-9a-z]+(?:'[0-9a-z]+)*/g;
  // As in search_words.py: the commonest English endings, longest first, a stem of 3 letters or more.
  var SUFFIXES = ["ingly", "edly", "ings", "ing", "ies", "ied", "ness", "ment", "ally", "ful",
    "al", "ly", "es", "ed", "s", "e"];
  var MIN_STEM = 3;
  var STOP_WORDS = ("a an and are as at be can do does for from have how i if in is it me my of " +
    "on or our so that the this to us we what when where who why will with you your").split(" ");
  var SHORT_WORD = 5;
  var LONG_WORD = 8;
  var HELP_PAGE = "help/get-help-now/";

  var form = document.querySelector("[data-handbook-search]");
  var status = document.querySelector("[data-search-status]");
  var list = document.querySelector("[data-search-results]");
  if (!form || !status || !list || !window.fetch) return;
  var input = form.querySelector("input[name=q]");
  var root = new URL("../", document.baseURI); // the search page sits one level down
  var help = document.querySelector("[data-search-help]");
  var sections = null;
  var vocabulary = [];
  var crisis = [];
  var announceTimer = null;

  function words(text) {
    return text.toLowerCase().replace(/\u2019/g, "'").match(WORD) || [];
  }

  function stem(word) {
    for (var index = 0; index < SUFFIXES.length; index += 1) {
      var suffix = SUFFIXES[index];
      if (word.length - suffix.length >= MIN_STEM && word.slice(-suffix.length) === suffix) {
        return word.slice(0, -suffix.length) + (suffix === "ies" || suffix === "ied" ? "y" : "");
      }
    }
    return word;
  }

  function stems(text) {
    return words(text).map(stem);
  }

  function unique(list) {
    return list.filter(function (item, index) { return list.indexOf(item) === index; });
  }

  function queryTerms(query) {
    var every = unique(stems(query));
    var meaningful = every.filter(function (term) { return STOP_WORDS.indexOf(term) < 0; });
    return meaningful.length ? meaningful : every;
  }

  // At most `limit` edits apart: a letter added, dropped or changed, or two neighbours swapped.
  function within(limit, first, second) {
    if (Math.abs(first.length - second.length) > limit) return false;
    var previous2 = [];
    var previous = [];
    for (var j = 0; j <= second.length; j += 1) previous.push(j);
    for (var i = 1; i <= first.length; i += 1) {
      var current = [i];
      for (var k = 1; k <= second.length; k += 1) {
        var cost = first[i - 1] === second[k - 1] ? 0 : 1;
        current[k] = Math.min(previous[k] + 1, current[k - 1] + 1, previous[k - 1] + cost);
        if (i > 1 && k > 1 && first[i - 1] === second[k - 2] && first[i - 2] === second[k - 1]) {
          current[k] = Math.min(current[k], previous2[k - 2] + 1);
        }
      }
      if (Math.min.apply(null, current) > limit) return false;
      previous2 = previous;
      previous = current;
    }
    return previous[second.length] <= limit;
  }

  function spellings(term, vocabulary) {
    if (vocabulary.some(function (word) { return word.indexOf(term) === 0; })) return [term];
    var allowance = term.length >= LONG_WORD ? 2 : term.length >= SHORT_WORD ? 1 : 0;
    if (!allowance) return [];
    return vocabulary.filter(function (word) { return within(allowance, term, word); }).sort();
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
      var text = plainText(String(item.text));
      found.push({
        location: location, title: title, text: text, pageTitle: pageTitle,
        titleStems: stems(title), textStems: stems(text)
      });
    });
    return found;
  }

  function toCrisis(text) {
    return text.split("\n").filter(function (line) {
      return line.trim() && line.charAt(0) !== "#";
    }).map(stems);
  }

  function saysCrisis(query) {
    var said = stems(query);
    return crisis.some(function (phrase) {
      if (!phrase.length) return false;
      for (var start = 0; start + phrase.length <= said.length; start += 1) {
        if (phrase.every(function (word, index) { return said[start + index] === word; })) return true;
      }
      return false;
    });
  }

  function countStarting(ways, candidates) {
    var count = 0;
    candidates.forEach(function (word) {
      if (ways.some(function (term) { return word.indexOf(term) === 0; })) count += 1;
    });
    return count;
  }

  function startsAny(token, terms) {
    return stems(token).some(function (word) {
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
    var terms = queryTerms(query);
    if (!terms.length) return [];
    var wanted = terms.map(function (term) { return spellings(term, vocabulary); });
    var flat = [].concat.apply([], wanted);
    var scored = [];
    sections.forEach(function (section, order) {
      var matched = 0;
      var score = 0;
      wanted.forEach(function (ways) {
        var found = 10 * countStarting(ways, section.titleStems) + countStarting(ways, section.textStems);
        if (found) matched += 1;
        score += found;
      });
      if (matched) scored.push({ section: section, score: score, order: order, matched: matched });
    });
    var most = Math.max.apply(null, [0].concat(scored.map(function (item) { return item.matched; })));
    var results = scored.filter(function (item) { return item.matched === most; });
    results.sort(function (a, b) { return b.score - a.score || a.order - b.order; });
    if (saysCrisis(query)) {
      var help = sections.filter(function (section) { return section.location === HELP_PAGE; });
      results = help.map(function (section) { return { section: section }; }).concat(
        results.filter(function (item) { return item.section.location !== HELP_PAGE; })
      );
    }
    return results.slice(0, MOST_RESULTS).map(function (item) {
      return { section: item.section, snippet: snippet(item.section.text, flat) };
    });
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
    var terms = queryTerms(query);
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
    if (help) help.hidden = !(terms.length && !results.length);
    // Announced once typing pauses, so a screen reader is not interrupted at every key.
    window.clearTimeout(announceTimer);
    var message = terms.length ? countText(results.length, query.trim()) : "";
    if (terms.length && !results.length) message += ". Try a shorter word, or another word with the same meaning.";
    if (announceNow) status.textContent = message;
    else announceTimer = window.setTimeout(function () { status.textContent = message; }, ANNOUNCE_AFTER_MS);
  }

  function fetched(name, read) {
    return fetch(new URL(name, root).href, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) throw new Error("no " + name);
      return read(response);
    });
  }

  // Without the crisis words search still works; without the index it is the server's.
  var crisisWords = fetched("help/crisis-words.txt", function (response) { return response.text(); })
    .catch(function () { return ""; });
  Promise.all([fetched("search.json", function (response) { return response.json(); }), crisisWords])
    .then(function (loaded) {
      var index = loaded[0];
      crisis = toCrisis(loaded[1]);
      sections = toSections(index.items || []);
      var seen = {};
      sections.forEach(function (section) {
        section.titleStems.concat(section.textStems).forEach(function (word) { seen[word] = true; });
      });
      vocabulary = Object.keys(seen);
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
