// Notification log: the header checkbox selects or clears every row of the page.
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", function () {
    document.querySelectorAll("#log tbody input[type=checkbox]").forEach(function (box) {
      box.checked = all.checked;
    });
  });
})();
