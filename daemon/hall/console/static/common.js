// Shared by the window and hall pages: sign-in, CSRF-protected writes, live updates (SSE).
// Every text comes from the labels (labels.<lang>.json, embedded by the daemon in #boot).
"use strict";
var Console = (function () {
  var boot = JSON.parse(document.getElementById("boot").textContent);
  var L = boot.labels;
  var csrf = boot.csrf;
  var base = boot.place === "hall" ? "/hall" : "/window/" + encodeURIComponent(boot.place);
  var source = null;
  var onState = null;
  var clockOffset = 0; // server time - browser time, seconds
  var me = null;       // {number, name} while signed in

  function $(id) { return document.getElementById(id); }

  function fmt(text, vars) {
    return String(text).replace(/\{(\w+)\}/g, function (m, k) {
      return vars && vars[k] !== undefined && vars[k] !== null ? vars[k] : m;
    });
  }

  function errorText(data) {
    if (data && data.error && L.errors[data.error_code]) return data.error; // filled by the daemon
    var t = (data && L.errors[data.error_code]) || L.errors.daemon;
    return fmt(t, { wait: data && data.wait, detail: (data && data.detail) || "" });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function clock(at) {
    if (!at) return L.never_seen;
    return new Date(at * 1000).toLocaleTimeString(L.lang, { timeZone: "Asia/Shanghai", hour12: false });
  }

  function serverNow() { return Date.now() / 1000 + clockOffset; }

  async function post(action, body) {
    var r, data = {};
    try {
      r = await fetch(base + "/" + action, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body || {})
      });
    } catch (e) {
      return { ok: false, status: 0, data: { error_code: "network" } };
    }
    try { data = await r.json(); } catch (e) { data = {}; }
    if (data.csrf) csrf = data.csrf;
    if (r.status === 401) signedOut(errorText(data));
    return { ok: r.ok, status: r.status, data: data };
  }

  // someone else signed in at the same window: both pages say so
  function showOthers(st) {
    var others = (st.signed_in || []).filter(function (s) { return !me || s.number !== me.number; });
    $("others").textContent = others.length ? fmt(L.others_here, { names: others.map(function (s) {
      return s.name ? s.name + "（" + s.number + "）" : s.number;
    }).join("、") }) : "";
    $("others").hidden = others.length === 0;
  }

  function showMe(who) {
    me = who;
    $("me-name").textContent = fmt(L.signed_in_as, { name: who.name || who.number, number: who.number });
    $("me").hidden = false;
    $("sign-in").hidden = true;
    $("work").hidden = false;
  }

  function signedOut(message) {
    if (source) { source.close(); source = null; }
    me = null;
    $("others").hidden = true;
    $("me").hidden = true;
    $("work").hidden = true;
    $("reconnecting").hidden = true;
    $("sign-in").hidden = false;
    $("sign-in-error").textContent = message || "";
    $("pin").value = "";
    ($("number").value ? $("pin") : $("number")).focus();
  }

  // after the session ended: the daemon answers with a fresh (signed-out) session and its token
  function refreshToken() {
    fetch(base + "/state", { credentials: "same-origin" }).then(function (r) {
      return r.json();
    }).then(function (d) { if (d.csrf) csrf = d.csrf; }, function () {});
  }

  function listen() {
    if (source) source.close();
    source = new EventSource(base + "/events");
    source.addEventListener("state", function (e) {
      var st = JSON.parse(e.data);
      clockOffset = st.now - Date.now() / 1000;
      $("reconnecting").hidden = true;
      showOthers(st);
      if (onState) onState(st);
    });
    source.addEventListener("signed-out", function (e) {
      signedOut(errorText(JSON.parse(e.data)));
      refreshToken();
    });
    source.onerror = function () {
      if (!source) return;
      if (source.readyState === EventSource.CLOSED) {
        // refused (signed out) or the daemon is gone: ask once which it is, then retry
        fetch(base + "/state", { credentials: "same-origin" }).then(function (r) {
          if (r.status === 401) return r.json().then(function (d) { signedOut(errorText(d)); });
          setTimeout(listen, 2000);
        }, function () { $("reconnecting").hidden = false; setTimeout(listen, 2000); });
      } else {
        $("reconnecting").hidden = false;
      }
    };
  }

  function start(render, onSignedIn) {
    onState = render;
    // a missing field is told in the page's language by the page, not in the browser's bubble
    Array.prototype.forEach.call(document.forms, function (f) { f.noValidate = true; });
    $("sign-in-form").addEventListener("submit", async function (e) {
      e.preventDefault();
      var creds = { number: $("number").value.trim(), pin: $("pin").value };
      if (!creds.number || !creds.pin) {
        $("sign-in-error").textContent = L.errors["empty-sign-in"];
        (creds.number ? $("pin") : $("number")).focus();
        return;
      }
      var r = await post("sign-in", creds);
      if (r.status === 403 && r.data.error_code === "csrf" && r.data.csrf) {
        r = await post("sign-in", creds); // the page's session had ended: once more, new token
      }
      $("pin").value = "";
      if (!r.ok) {
        $("sign-in").hidden = false;
        $("sign-in-error").textContent = errorText(r.data);
        $("pin").focus();
        return;
      }
      $("sign-in-error").textContent = "";
      showMe(r.data);
      showOthers(r.data.state);
      render(r.data.state);
      listen();
      if (onSignedIn) onSignedIn();
    });
    $("sign-out").addEventListener("click", async function () {
      await post("sign-out", {});
      signedOut("");
    });
    if (boot.me) {
      showMe(boot.me);
      listen();
      if (onSignedIn) onSignedIn();
    } else {
      signedOut("");
    }
  }

  return { L: L, $: $, fmt: fmt, el: el, clock: clock, post: post, errorText: errorText,
           serverNow: serverNow, start: start, place: boot.place };
})();
