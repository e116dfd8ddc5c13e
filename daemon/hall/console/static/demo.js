// A kept demo's "simulated terminal" panel on the index page: the five keys a citizen presses,
// passed on by the daemon to the demo's virtual keypad (POST /demo/press, with the CSRF token).
"use strict";
(function () {
  var boot = JSON.parse(document.getElementById("boot").textContent);
  var L = boot.labels, csrf = boot.csrf;
  function $(id) { return document.getElementById(id); }

  async function press(level, button) {
    var terminal = $("demo-terminal").value, reason = $("demo-reason").value;
    var body = { terminal: terminal, level: level };
    if (reason && level >= 4) body.reason = reason; // a reason only after a bad review
    button.disabled = true;
    $("demo-result").textContent = "";
    var data = {}, ok = false;
    try {
      var r = await fetch("/demo/press", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body)
      });
      ok = r.ok;
      data = await r.json();
    } catch (e) {
      data = { error: L.errors.network };
    }
    button.disabled = false;
    if (data.csrf) csrf = data.csrf;
    $("demo-result").textContent = ok ?
      L.demo_pressed.replace("{level}", L.levels[level]).replace("{terminal}", terminal) :
      (data.error || L.errors.network);
  }

  Array.prototype.forEach.call(document.querySelectorAll("#demo-keys .key"), function (b) {
    b.addEventListener("click", function () { press(Number(b.dataset.level), b); });
  });
})();
