/* cmdqv-lab report: draw every chart placeholder of the page with the local Vega runtime.
 *
 * Loaded once per page after assets/vega.js (vl-convert's bundle of vega, vega-lite and
 * vega-embed, which defines window.vegaEmbed). Each <div class="cmdqv-chart" data-spec=ID> has its
 * Vega-Lite spec in <script type="application/json" id=ID>. Nothing is fetched: the specs carry
 * their data inline and the loader below refuses every URL. A chart that fails shows the error in
 * place and logs it with console.error (the browser test fails on console errors).
 */
(function () {
  "use strict";

  var views = (window.cmdqvViews = {});

  function fail(el, err) {
    el.setAttribute("data-rendered", "error");
    el.textContent = "Chart failed to render: " + err;
    console.error("cmdqv chart " + el.id + ": " + err);
  }

  /* A Vega loader that refuses everything (vega-embed accepts any object with a load method).
   * Built by hand: vl-convert's bundle sets window.vega to null, so vega.loader() is unavailable. */
  function offlineLoader() {
    function refuse(uri) {
      return Promise.reject(new Error("the offline report loads nothing (" + uri + ")"));
    }
    return { load: refuse, sanitize: refuse, http: refuse, file: refuse };
  }

  function draw(el) {
    var specEl = document.getElementById(el.getAttribute("data-spec"));
    var spec;
    try {
      spec = JSON.parse(specEl.textContent);
    } catch (e) {
      fail(el, "bad spec: " + e);
      return;
    }
    if (typeof window.vegaEmbed !== "function") {
      fail(el, "the Vega runtime (assets/vega.js) did not load");
      return;
    }
    window
      .vegaEmbed(el, spec, {
        renderer: "svg",
        actions: { export: true, source: false, compiled: false, editor: false },
        loader: offlineLoader(),
        tooltip: true,
      })
      .then(function (result) {
        views[el.id] = result.view;
        el.setAttribute("data-rendered", "1");
      })
      .catch(function (err) {
        fail(el, err);
      });
  }

  function drawAll() {
    var els = document.querySelectorAll("div.cmdqv-chart");
    for (var i = 0; i < els.length; i++) draw(els[i]);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
