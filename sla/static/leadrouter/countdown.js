// The live SLA clock: each [data-due] element shows "due in 12:30" and ticks every second. The server renders
// the same text, so the page is right without JavaScript too; this only keeps it moving. A file, not an inline
// script, so the Content-Security-Policy can refuse inline scripts.
(function () {
  function pad(n) { return String(n).padStart(2, "0"); }
  function label(ms) {
    var left = Math.floor(Math.abs(ms) / 1000), d = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600);
    var m = Math.floor(left % 3600 / 60), s = left % 60;
    var text = d ? d + " d " + h + " h" : (h ? h + ":" + pad(m) : m) + ":" + pad(s);
    return ms >= 0 ? "due in " + text : "overdue " + text;
  }
  function tick() {
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (!isNaN(due)) { el.textContent = label(due - Date.now()); }
    });
  }
  setInterval(tick, 1000);
}());
