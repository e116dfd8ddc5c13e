// The window staff page: scan or type the ticket, 「开始办理」, then 「请评价」; the big box shows
// live what the window's terminal is doing. Keyboard only: Enter moves ticket -> 事项 -> start,
// then focus sits on 「请评价」 (Enter or Space presses it).
"use strict";
(function () {
  var C = Console, L = C.L, $ = C.$;
  var current = null;
  var lastShow = null;

  function render(st) {
    // a view the live stream computed before the page's own start or finish, arriving after
    // its answer, is older: drawn, it would switch 「请评价」 off and on again and lose its focus
    if (current && st.now < current.now) return;
    current = st;
    var box = $("status");
    box.className = "status show-" + st.show + (st.level ? " level-" + st.level : "");
    var text = L.show[st.show] || st.show;
    var by = st.channel === "QR" ? "（" + L.channel_qr + "）" : "";
    $("status-text").textContent = C.fmt(text, { level: (st.level_name || "") + by });
    var sub = "";
    if (st.ticket && st.state !== "idle") {
      sub = C.fmt(st.state === "serving" ? L.serving_ticket : L.last_ticket, { ticket: st.ticket });
    }
    $("status-sub").textContent = sub;
    tick();
    var list = $("terminals");
    list.textContent = "";
    st.terminals.forEach(function (t) {
      var li = C.el("li", t.online ? "online" : "offline");
      li.appendChild(C.el("span", "dot"));
      li.appendChild(C.el("span", null, L.terminal + " " + t.id + " · " + (t.online ? L.online : L.offline)));
      if (!t.online) li.appendChild(C.el("small", null, " " + L.last_seen + " " + C.clock(t.last_seen)));
      list.appendChild(li);
    });
    $("request-rating").disabled = st.state !== "serving";
    if (lastShow !== st.show && (st.show === "rated" || st.show === "not-rated")) {
      var a = document.activeElement;
      if (!a || a === document.body || a.id === "request-rating") $("ticket").focus();
    }
    lastShow = st.show;
    renderQr(st);
  }

  // The QR channel (评价二维码): the open prompt's code, for a citizen who rates on the phone.
  function renderQr(st) {
    var box = $("qr"), img = $("qr-img");
    box.hidden = !st.qr_url;
    if (!st.qr_url) { img.removeAttribute("src"); return; }
    var src = "/window/" + encodeURIComponent(st.window) + "/qr.svg?t=" + st.transaction;
    if (img.getAttribute("src") !== src) img.setAttribute("src", src);
  }

  function tick() {
    if (!current || current.state !== "prompting" || !current.expires_at) return;
    var left = Math.max(0, Math.round(current.expires_at - C.serverNow()));
    var sub = C.fmt(L.last_ticket, { ticket: current.ticket }) + " · " + C.fmt(L.seconds_left, { s: left });
    $("status-sub").textContent = sub;
  }
  setInterval(tick, 1000);

  function showError(data) { $("work-error").textContent = data ? C.errorText(data) : ""; }

  $("ticket").addEventListener("keydown", function (e) {
    if (e.key === "Enter") { e.preventDefault(); $("item").focus(); }
  });

  $("start-form").addEventListener("submit", async function (e) {
    e.preventDefault();
    var ticket = $("ticket").value.trim();
    if (!ticket) { showError({ error_code: "ticket-needed" }); $("ticket").focus(); return; }
    var r = await C.post("start", { ticket: ticket, item: $("item").value.trim() });
    if (!r.ok) { if (r.status !== 401) showError(r.data); return; }
    showError(null);
    $("ticket").value = "";
    $("item").value = "";
    render(r.data.state);
    $("request-rating").focus();
  });

  $("request-rating").addEventListener("click", async function () {
    var r = await C.post("finish", {});
    if (!r.ok) { if (r.status !== 401) showError(r.data); return; }
    showError(null);
    render(r.data.state);
    $("ticket").focus(); // the button is off while the citizen rates; ready for the next ticket
  });

  C.start(render, function () { $("ticket").focus(); });
})();
