// Phone layout: each table row becomes a card whose cells say which column they are (app.css, "table.stack").
// The label is the column's header, so a translated page stays in its language; without this script the
// table scrolls sideways instead.
(function () {
  "use strict";
  document.querySelectorAll("main .table-wrap > table").forEach(function (table) {
    var head = table.tHead && table.tHead.rows[0];
    if (!head) return;
    var labels = Array.prototype.map.call(head.cells, function (cell) {
      return cell.textContent.replace(/[↑↓]/g, "").trim();
    });
    Array.prototype.forEach.call(table.tBodies, function (body) {
      Array.prototype.forEach.call(body.rows, function (row) {
        Array.prototype.forEach.call(row.cells, function (cell, i) {
          if (!cell.hasAttribute("data-label") && cell.colSpan === 1) cell.setAttribute("data-label", labels[i] || "");
        });
      });
    });
    table.classList.add("stack");
  });
})();
