// The duty manager page: every window and terminal first, then today's counts by level, the
// acceptance rate so far, and bad-review alerts (the newest few; a new one flashes, and sounds
// if the manager switched the sound on) that the manager acknowledges.
"use strict";
(function () {
  var C = Console, L = C.L, $ = C.$;
  var seen = null;   // alert ids already shown (null: first view, nothing flashes or sounds)
  var audio = null;  // created on the click that switches the sound on (browsers require one)
  var SOUND_KEY = "hcp.hall.sound";

  function soundOn() {
    try { return window.localStorage.getItem(SOUND_KEY) === "on"; } catch (e) { return false; }
  }

  function beep() {
    var body = document.body;
    body.dataset.sounds = String(Number(body.dataset.sounds || 0) + 1); // what the tests count
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!audio) audio = new Ctx();
    if (audio.state === "suspended") audio.resume();
    [0, 0.35].forEach(function (at) {
      var o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = 880;
      g.gain.value = 0.25;
      o.connect(g);
      g.connect(audio.destination);
      o.start(audio.currentTime + at);
      o.stop(audio.currentTime + at + 0.25);
    });
  }

  function nowrap(tag, cls, text) { return C.el(tag, (cls ? cls + " " : "") + "nw", text); }

  function who(number, name) { return name ? name + "（" + number + "）" : number; }

  function renderAlerts(st) {
    var list = $("alerts"), fresh = false, now = {};
    list.textContent = "";
    st.alerts.forEach(function (a) {
      now[a.id] = true;
      var isNew = seen && !seen[a.id];
      if (isNew && !a.acked_by) fresh = true;
      var li = C.el("li", "alert level-" + a.level + (a.acked_by ? " acked" : "") +
                    (isNew ? " new" : ""));
      li.dataset.id = a.id;
      var line = C.el("div", "facts");
      line.appendChild(nowrap("span", "at", C.clock(a.at)));
      line.appendChild(nowrap("span", "w", a.window));
      line.appendChild(nowrap("span", "lv", L.levels[a.level] +
        (a.channel === "QR" ? "（" + L.channel_qr + "）" : "")));
      line.appendChild(nowrap("span", "reason", a.reason ? (L.reasons[a.reason] || a.reason) : L.no_reason));
      line.appendChild(nowrap("span", "staff", who(a.staff, a.staff_name)));
      line.appendChild(nowrap("span", "ticket", a.ticket));
      li.appendChild(line);
      if (a.acked_by) {
        li.appendChild(nowrap("span", "ack-by", C.fmt(L.acked, {
          name: who(a.acked_by, a.acked_by_name), time: C.clock(a.acked_at) })));
      } else {
        var b = C.el("button", "small ack", L.ack);
        b.type = "button";
        b.addEventListener("click", function () { acknowledge(a.id, b); });
        li.appendChild(b);
      }
      list.appendChild(li);
    });
    seen = now;
    if (fresh && soundOn()) beep();
    $("no-alerts").hidden = st.alerts.length > 0;
    $("alerts-summary").textContent = C.fmt(L.alerts_summary, { total: st.alerts_total,
                                                                open: st.alerts_open });
    $("alerts-more").hidden = st.alerts_total <= st.alerts.length;
    $("alerts-more").textContent = C.fmt(L.alerts_more, { shown: st.alerts.length });
  }

  async function acknowledge(id, button) {
    button.disabled = true;
    var r = await C.post("ack", { id: id });
    $("hall-error").textContent = r.ok ? "" : C.errorText(r.data);
    if (r.ok) render(r.data.state); else button.disabled = false;
  }

  function renderIntegrity(st) {
    var ul = $("integrity");
    ul.textContent = "";
    (st.integrity || []).forEach(function (f) {
      var li = C.el("li", "finding " + f.detector);
      li.appendChild(C.el("span", "explanation", f.explanation));
      ul.appendChild(li);
    });
    $("no-integrity").hidden = (st.integrity || []).length > 0;
  }

  function renderWindows(st) {
    var list = $("windows");
    list.textContent = "";
    st.windows.forEach(function (w) {
      var li = C.el("li", "tile show-" + w.show + (w.level ? " level-" + w.level : ""));
      var head = C.el("div", "tile-head");
      head.appendChild(nowrap("span", "w", w.window));
      var state = L.show_short[w.show] || w.show;
      if (w.show === "rated" && w.level) state += "：" + L.levels[w.level];
      head.appendChild(nowrap("span", "state", state));
      if (w.ticket) head.appendChild(nowrap("span", "ticket", w.ticket));
      li.appendChild(head);
      var staff = C.el("div", "staff");
      if (w.staff.length) {
        w.staff.forEach(function (s) { staff.appendChild(nowrap("span", "person", who(s.number, s.name))); });
      } else {
        staff.appendChild(nowrap("span", "person nobody", L.nobody));
      }
      li.appendChild(staff);
      var terms = C.el("div", "terms");
      w.terminals.forEach(function (t) {
        var span = nowrap("span", "term " + (t.online ? "online" : "offline"));
        span.appendChild(C.el("span", "dot"));
        span.appendChild(document.createTextNode(t.id + " " + (t.online ? L.online : L.offline) +
          " · " + C.clock(t.last_seen)));
        terms.appendChild(span);
      });
      li.appendChild(terms);
      list.appendChild(li);
    });
  }

  function render(st) {
    var broker = st.broker || { connected: true };
    $("broker").hidden = broker.connected;
    $("broker-detail").textContent = broker.error || "";
    renderWindows(st);
    var counts = $("counts");
    counts.textContent = "";
    Object.keys(L.levels).forEach(function (lv) {
      var li = C.el("li", "level level-" + lv);
      li.appendChild(nowrap("span", "name", L.levels[lv]));
      li.appendChild(C.el("strong", "n", String(st.counts[lv] || 0)));
      counts.appendChild(li);
    });
    $("rate").textContent = st.rate === null ? L.no_data : (st.rate * 100).toFixed(1) + "%";
    $("rate-detail").textContent = st.rate === null ? "" :
      C.fmt(L.acceptance_detail, { rated: st.rated, finished: st.finished });
    renderAlerts(st);
    renderIntegrity(st);
  }

  $("sound").checked = soundOn();
  $("sound").addEventListener("change", function (e) {
    try { window.localStorage.setItem(SOUND_KEY, e.target.checked ? "on" : "off"); } catch (x) {}
    if (e.target.checked) beep(); // so the manager hears what an alert sounds like
  });

  C.start(render);
})();
