// Progressive enhancement for the admin. Every form works without this file; it only saves clicks.
(function () {
  "use strict";

  // A "Copy" button beside each value shown once (webhook URL, secret, new API key).
  document.querySelectorAll("input.secret[readonly]").forEach(function (input) {
    var label = document.querySelector('label[for="' + input.id + '"]');
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary copy";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy " + (label ? label.textContent.trim() : "value"));
    var status = document.createElement("span");
    status.setAttribute("role", "status");
    status.className = "hint";
    button.addEventListener("click", function () {
      input.select();
      var done = function () { status.textContent = "Copied."; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { status.textContent = "Press Ctrl+C to copy."; });
      } else {
        status.textContent = document.execCommand && document.execCommand("copy") ? "Copied." : "Press Ctrl+C to copy.";
      }
    });
    input.insertAdjacentElement("afterend", status);
    input.insertAdjacentElement("afterend", button);
  });

  // The mapping screen: show the levels for every option, or the per-option rows, whichever is chosen.
  var modes = document.querySelectorAll('input[name="mode"]');
  var everyOption = document.getElementById("levels-every-option");
  var perOption = document.getElementById("levels-per-option");
  if (modes.length && everyOption && perOption) {
    var sync = function () {
      var chosen = document.querySelector('input[name="mode"]:checked');
      var per = chosen && chosen.value === "per_option";
      everyOption.hidden = per;
      perOption.hidden = !per;
    };
    modes.forEach(function (mode) { mode.addEventListener("change", sync); });
    sync();
  }

  // Lists of rows (pricing options, upsells, downsells): "Add a row" copies the last row, numbered on, empty.
  document.querySelectorAll("table[data-rows]").forEach(function (table) {
    var body = table.tBodies[0];
    if (!body || !body.rows.length) { return; }
    var name = table.getAttribute("data-rows");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = "Add a row";
    button.setAttribute("aria-label", "Add a row to " + (table.caption ? table.caption.textContent.trim() : name));
    button.addEventListener("click", function () {
      var last = body.rows[body.rows.length - 1];
      var row = last.cloneNode(true);
      var index = body.rows.length;
      var pattern = new RegExp("^" + name + "-\\d+-");
      var renumber = function (value) { return value.replace(pattern, name + "-" + index + "-"); };
      row.querySelectorAll("[id],[name],[for]").forEach(function (el) {
        ["id", "name", "for"].forEach(function (attr) {
          if (el.hasAttribute(attr)) { el.setAttribute(attr, renumber(el.getAttribute(attr))); }
        });
      });
      row.querySelectorAll("label.visually-hidden, legend").forEach(function (el) {
        el.textContent = el.textContent.replace(/row \d+$/, "row " + (index + 1));
      });
      row.querySelectorAll("input[type=text]").forEach(function (el) { el.value = ""; el.removeAttribute("value"); });
      row.querySelectorAll("input[type=checkbox]").forEach(function (el) { el.checked = false; el.removeAttribute("checked"); });
      row.querySelectorAll("p.error, p.hint").forEach(function (el) { el.remove(); });
      row.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
      body.appendChild(row);
      var first = row.querySelector("input[type=text]");
      if (first) { first.focus(); }
    });
    var wrap = table.closest(".table-wrap") || table;
    var actions = document.createElement("div");
    actions.className = "actions";
    actions.appendChild(button);
    wrap.insertAdjacentElement("afterend", actions);
  });

  // The new-integration form: show only the fields the chosen cart uses.
  var kind = document.getElementById("kind");
  var kindFields = document.querySelectorAll("[data-kinds]");
  if (kind && kindFields.length) {
    var showKind = function () {
      kindFields.forEach(function (el) {
        el.hidden = el.getAttribute("data-kinds").split(" ").indexOf(kind.value) === -1;
      });
    };
    kind.addEventListener("change", showKind);
    showKind();
  }
  // The rule editor: each step shows only the fields its action uses (without this file all are shown, with hints).
  document.querySelectorAll("fieldset.action-row").forEach(function (row) {
    var type = row.querySelector("select.action-type");
    if (!type) { return; }
    var sync = function () {
      row.querySelectorAll(".action-field").forEach(function (wrap) {
        var used = (wrap.getAttribute("data-for") || "").split(" ").indexOf(type.value) >= 0;
        wrap.hidden = !used && !wrap.querySelector(".error");
      });
    };
    type.addEventListener("change", sync);
    sync();
  });
})();
