// The duty manager page: every window and terminal, today's counts by level, the acceptance rate
// so far, and bad-review alerts (newest first; a new one flashes) the moment they are stored.
"use strict";
(function () {
  var C = Console, L = C.L, $ = C.$;
  var seen = null; // alert ids already shown (null: first view, nothing flashes)

  function render(st) {
    var counts = $("counts");
    counts.textContent = "";
    Object.keys(L.levels).forEach(function (lv) {
      var li = C.el("li", "level level-" + lv);
      li.appendChild(C.el("span", "name", L.levels[lv]));
      li.appendChild(C.el("strong", "n", String(st.counts[lv] || 0)));
      counts.appendChild(li);
    });
    $("rate").textContent = st.rate === null ? L.no_data : (st.rate * 100).toFixed(1) + "%";
    $("rate-detail").textContent = st.rate === null ? "" :
      C.fmt(L.acceptance_detail, { rated: st.rated, finished: st.finished });

    var tbody = $("alerts");
    tbody.textContent = "";
    var now = {};
    st.alerts.forEach(function (a) {
      now[a.id] = true;
      var tr = C.el("tr", "alert level-" + a.level + (seen && !seen[a.id] ? " new" : ""));
      tr.dataset.id = a.id;
      tr.appendChild(C.el("td", null, C.clock(a.at)));
      tr.appendChild(C.el("td", null, a.window));
      tr.appendChild(C.el("td", null, a.staff_name ? a.staff_name + "（" + a.staff + "）" : a.staff));
      tr.appendChild(C.el("td", "lv", L.levels[a.level] + (a.channel === "QR" ? "（" + L.channel_qr + "）" : "")));
      tr.appendChild(C.el("td", null, a.reason ? (L.reasons[a.reason] || a.reason) : L.no_reason));
      tr.appendChild(C.el("td", null, a.ticket));
      tbody.appendChild(tr);
    });
    seen = now;
    $("no-alerts").hidden = st.alerts.length > 0;
    $("alerts-table").hidden = st.alerts.length === 0;

    var wb = $("windows");
    wb.textContent = "";
    st.windows.forEach(function (w) {
      var tr = C.el("tr", "show-" + w.show + (w.level ? " level-" + w.level : ""));
      tr.appendChild(C.el("td", "w", w.window));
      var state = L.show_short[w.show] || w.show;
      if (w.show === "rated" && w.level) state += "：" + L.levels[w.level];
      tr.appendChild(C.el("td", "state", state));
      tr.appendChild(C.el("td", null, w.staff.length ? w.staff.map(function (s) {
        return s.name ? s.name + "（" + s.number + "）" : s.number;
      }).join("、") : L.nobody));
      var td = C.el("td", "terms");
      w.terminals.forEach(function (t) {
        var span = C.el("span", "term " + (t.online ? "online" : "offline"));
        span.appendChild(C.el("span", "dot"));
        span.appendChild(document.createTextNode(t.id + " " + (t.online ? L.online : L.offline) +
          " · " + C.clock(t.last_seen)));
        td.appendChild(span);
      });
      tr.appendChild(td);
      wb.appendChild(tr);
    });
  }

  C.start(render);
})();
