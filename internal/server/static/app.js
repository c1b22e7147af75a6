// labtrail's pages work without this script; it adds what the server
// cannot know or draw: times in the viewer's time zone, and charts.
(function () {
  "use strict";

  var pad = function (n) { return n < 10 ? "0" + n : "" + n; };

  // Times are rendered in UTC by the server, as <time datetime="...">.
  function localTimes(root) {
    var els = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      if (el.dataset.local) continue;
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) continue;
      var text = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
      if (el.dataset.format !== "date") text += " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
      el.title = el.textContent.trim();
      el.textContent = text;
      el.dataset.local = "1";
    }
    var zone = document.getElementById("tz");
    if (zone) {
      try { zone.textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time"; } catch (e) { zone.textContent = "local time"; }
    }
  }

  function duration(s) {
    if (s == null) return "—";
    if (s < 60) return Math.round(s) + "s";
    if (s < 3600) return Math.round(s / 60) + "m";
    if (s < 86400) return (s / 3600).toFixed(1) + "h";
    return (s / 86400).toFixed(1) + "d";
  }
  function format(unit, v) {
    if (v == null) return "—";
    if (unit === "seconds") return duration(v);
    if (unit === "ratio") return (v * 100).toFixed(1) + "%";
    return String(Math.round(v * 100) / 100);
  }
  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  // A chart is <div class="chart-canvas" data-chart="ID"> with its data in
  // <script type="application/json" id="ID">{"kind":"line|bars",
  // "unit":"count|seconds|ratio","x":[unix seconds],"series":[{"label","values"}]}.
  function charts() {
    if (typeof uPlot === "undefined") return;
    var els = document.querySelectorAll("[data-chart]");
    for (var i = 0; i < els.length; i++) draw(els[i]);
  }

  function draw(el) {
    var src = document.getElementById(el.dataset.chart);
    if (!src) return;
    var spec;
    try { spec = JSON.parse(src.textContent); } catch (e) { return; }
    if (!spec.x || spec.x.length === 0) return;
    var fg = cssVar("--fg"), line = cssVar("--line");
    var colors = ["--chart-1", "--chart-2", "--chart-3", "--chart-4", "--chart-5"].map(cssVar);
    // Bars are for one series; several would hide each other, so they are lines.
    var bars = spec.kind === "bars" && (spec.series || []).length === 1;
    var series = [{}];
    var data = [spec.x];
    (spec.series || []).forEach(function (s, i) {
      var c = colors[i % colors.length];
      var o = {
        label: s.label, stroke: c, width: 2, spanGaps: false,
        value: function (u, v) { return format(spec.unit, v); }
      };
      if (bars) {
        o.fill = c;
        o.paths = uPlot.paths.bars({ size: [0.7, 80] });
        o.points = { show: false };
      } else {
        o.points = { show: spec.x.length < 60 };
      }
      series.push(o);
      data.push(s.values);
    });
    var axis = { stroke: fg, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
    var y = Object.assign({}, axis, { values: function (u, vals) { return vals.map(function (v) { return format(spec.unit, v); }); }, size: 60 });
    var opts = {
      width: Math.max(el.clientWidth, 200), height: 220,
      series: series,
      axes: [axis, y],
      scales: { x: { time: true }, y: spec.unit === "ratio" ? { range: [0, 1] } : { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      legend: { live: true },
      cursor: { drag: { x: false, y: false } }
    };
    if (bars) opts.scales.x.range = function (u, min, max) {
      var step = spec.x.length > 1 ? spec.x[1] - spec.x[0] : 86400;
      return [min - step / 2, max + step / 2];
    };
    el.textContent = "";
    var plot = new uPlot(opts, data, el);
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(function () {
        var w = Math.max(el.clientWidth, 200);
        if (w !== plot.width) plot.setSize({ width: w, height: 220 });
      }).observe(el);
    }
  }

  // The filter form: typing dates means a custom window, picking a named
  // window clears the dates (which would otherwise win).
  function filterForm() {
    var forms = document.querySelectorAll("form.filters");
    for (var i = 0; i < forms.length; i++) {
      (function (f) {
        var win = f.querySelector("select[name=window]");
        var dates = f.querySelectorAll("input[type=date]");
        if (!win) return;
        win.addEventListener("change", function () {
          if (win.value !== "custom") for (var j = 0; j < dates.length; j++) dates[j].value = "";
        });
        for (var j = 0; j < dates.length; j++) dates[j].addEventListener("change", function () { win.value = "custom"; });
      })(forms[i]);
    }
  }

  function ready() {
    filterForm();
    localTimes(document);
    charts();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
  // Content htmx brings in has its times localised too.
  document.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); });
})();
