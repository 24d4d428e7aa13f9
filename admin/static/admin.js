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
