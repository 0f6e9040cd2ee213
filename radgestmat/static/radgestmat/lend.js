// The lend form: what a code is, which duration class a due date gives, client suggestions.
// A barcode scanner types the code then Enter: Enter on the code moves on instead of submitting half a form.
(function () {
  "use strict";
  var form = document.getElementById("lend-form");
  if (!form) return;
  var code = form.elements.materiel, client = form.elements.client, due = form.elements.date_retour_prevue;
  var materielOut = document.getElementById("materiel-preview"), dureeOut = document.getElementById("duree-preview");
  var clientOut = document.getElementById("client-preview");
  var list = document.getElementById("client-suggestions");

  function debounce(fn, ms) {
    var t;
    return function () { clearTimeout(t); t = setTimeout(fn, ms); };
  }
  function show(el, info) {
    el.textContent = info ? info.message : "";
    el.className = "preview" + (info ? (info.ok ? " ok" : " bad") : "");
  }
  // After a failed submit the server's error already sits by the code: do not say it twice.
  var codeHasServerError = !!document.querySelector("#field-materiel.has-error");
  // Previews overlap (the client field's change, then a due-date button): only the latest answer is shown,
  // or an earlier, slower one would blank what the later one said.
  var latest = 0;
  function preview() {
    var params = new URLSearchParams({ code: code.value.trim(), due: due.value, client: client.value.trim() });
    var asked = ++latest;
    return fetch(form.dataset.previewUrl + "?" + params, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (data) {
        if (asked !== latest) return;
        show(materielOut, code.value.trim() && !codeHasServerError ? data.materiel : null);
        show(dureeOut, due.value ? data.duree : null);
        // Which channels reach the borrower; the server's warnings (after a submit) already say it.
        if (clientOut && !document.getElementById("lend-warnings")) show(clientOut, data.client && data.client.message ? data.client : null);
      })
      .catch(function () {});
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function localValue(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function nextEmpty() {
    var fields = [client, due];
    for (var i = 0; i < fields.length; i++) if (!fields[i].value.trim()) return fields[i];
    return null;
  }

  code.addEventListener("input", function () { codeHasServerError = false; });
  code.addEventListener("input", debounce(preview, 250));
  code.addEventListener("keydown", function (e) {
    if (e.key !== "Enter") return;
    e.preventDefault();
    preview();
    var next = nextEmpty();
    if (next) next.focus(); else form.requestSubmit();
  });
  client.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !due.value) { e.preventDefault(); due.focus(); }
  });
  client.addEventListener("input", debounce(function () {
    var q = client.value.trim();
    if (q.length < 2 || /#\d+$/.test(q)) return;
    fetch(form.dataset.clientsUrl + "?" + new URLSearchParams({ q: q }), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { clients: [] }; })
      .then(function (data) {
        list.innerHTML = "";
        data.clients.forEach(function (label) {
          var opt = document.createElement("option");
          opt.value = label;
          list.appendChild(opt);
        });
      })
      .catch(function () {});
  }, 200));
  client.addEventListener("change", preview);
  due.addEventListener("input", debounce(preview, 150));
  due.addEventListener("change", preview);
  form.querySelectorAll(".quick button").forEach(function (b) {
    b.addEventListener("click", function () {
      // Round up to the next 5 minutes: readable, and "+4 h" really leaves at least 4 h.
      var step = 5 * 60e3, d = new Date(Math.floor(Date.now() / step) * step + step);
      if (b.dataset.hours) d = new Date(d.getTime() + Number(b.dataset.hours) * 3600e3);
      if (b.dataset.days) d.setDate(d.getDate() + Number(b.dataset.days));
      if (b.dataset.at) d.setHours(Number(b.dataset.at), 0, 0, 0);
      due.value = localValue(d);
      preview();
    });
  });
  if (code.value || due.value) preview();
})();

// The extend form: quick buttons move the current due date (not now) by a few hours or days.
(function () {
  "use strict";
  var form = document.getElementById("extend-form");
  if (!form) return;
  var due = form.elements.date_retour_prevue;
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  form.querySelectorAll(".quick button").forEach(function (b) {
    b.addEventListener("click", function () {
      var p = form.dataset.due.split(/[-T:]/).map(Number);
      var d = new Date(p[0], p[1] - 1, p[2], p[3], p[4]);
      if (b.dataset.hours) d.setHours(d.getHours() + Number(b.dataset.hours));
      if (b.dataset.days) d.setDate(d.getDate() + Number(b.dataset.days));
      due.value = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
    });
  });
})();
