// Renders the formulas with the KaTeX copy under docs/assets/katex (no CDN).
//  - Pages: pymdownx.arithmatex (generic mode) writes <span class="arithmatex">\(...\)</span> (inline) and
//    <div class="arithmatex">\[...\]</div> (display); each one is rendered in place.
//  - Search results: Material builds their previews from the search index, which holds the formulas' source
//    text; KaTeX's auto-render extension renders the \(...\) and \[...\] it finds there as results appear
//    (a formula split by a highlighted search term stays as source).
(function () {
  "use strict";

  function renderFormulas(root) {
    root.querySelectorAll(".arithmatex").forEach(function (element) {
      var text = element.textContent.trim();
      var display = text.startsWith("\\[");
      if (!(display || text.startsWith("\\("))) return; // already rendered
      katex.render(text.slice(2, -2), element, { displayMode: display, throwOnError: false });
    });
  }

  var searchDelimiters = [
    { left: "\\(", right: "\\)", display: false },
    { left: "\\[", right: "\\]", display: false },
  ];

  function renderSearchResults() {
    var list = document.querySelector(".md-search-result__list");
    if (!list || typeof renderMathInElement === "undefined") return;
    new MutationObserver(function (mutations) {
      mutations.forEach(function (mutation) {
        mutation.addedNodes.forEach(function (node) {
          if (node.nodeType === Node.ELEMENT_NODE) {
            renderMathInElement(node, { delimiters: searchDelimiters, throwOnError: false });
          }
        });
      });
    }).observe(list, { childList: true, subtree: true });
  }

  function onLoad(body) {
    renderFormulas(body);
    renderSearchResults();
  }

  if (typeof document$ !== "undefined") {
    document$.subscribe(function (page) { onLoad(page.body); }); // Material's page-load observable
  } else {
    document.addEventListener("DOMContentLoaded", function () { onLoad(document.body); });
  }
})();
