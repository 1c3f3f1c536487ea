// stepflow serve: live updates for the runs list and a run page. Every text goes in through
// textContent (never innerHTML), and CSS classes only from a fixed alphabet.
"use strict";
(function () {
  const body = document.body;
  const CLASS_OK = /^[a-z0-9 -]*$/;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls && CLASS_OK.test(cls)) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function duration(s) {
    if (s === null || s === undefined) return "-";
    if (s < 60) return s.toFixed(1) + "s";
    const m = Math.floor(s / 60), sec = Math.floor(s % 60);
    if (m < 60) return m + "m" + String(sec).padStart(2, "0") + "s";
    return Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") + "m";
  }
  function setBadge(container, status) {
    const badge = container.querySelector("[data-status]");
    if (!badge || badge.textContent === status) return;
    badge.textContent = status;
    badge.className = CLASS_OK.test(status) ? "badge st-" + status : "badge";
  }

  // -- the runs list ------------------------------------------------------------------------
  function runRow(r) {
    const tr = el("tr");
    tr.dataset.id = r.id;
    const st = el("td"), badge = el("span", "badge", r.status);
    badge.dataset.status = "";
    setBadge(st.appendChild(badge).parentNode, r.status);
    const name = el("td", "name"), a = el("a", "", r.name);
    a.href = "/job?" + new URLSearchParams({ name: r.name });
    name.appendChild(a);
    const idc = el("td", "opt mono"), link = el("a", "", r.id.slice(0, 8));
    link.href = "/runs/" + encodeURIComponent(r.id);
    idc.appendChild(link);
    const steps = el("td", "", r.completed_steps + "/" + r.total_steps); steps.dataset.steps = "";
    const dur = el("td", "", duration(r.duration_s)); dur.dataset.duration = "";
    const when = el("td", "opt", (r.started_at || r.created_at || "").replace("T", " ").slice(0, 19));
    [st, name, idc, steps, dur, when].forEach((c) => tr.appendChild(c));
    return tr;
  }
  function liveList() {
    const tbody = document.getElementById("runs");
    const dot = document.querySelector(".live-dot");
    const es = new EventSource("/api/events");
    es.onopen = () => dot && dot.classList.add("on");
    es.onerror = () => dot && dot.classList.remove("on");
    es.addEventListener("runs", (ev) => {
      const payload = JSON.parse(ev.data);
      const seen = new Map();
      tbody.querySelectorAll("tr[data-id]").forEach((tr) => seen.set(tr.dataset.id, tr));
      const fresh = [];
      payload.runs.concat(payload.active).forEach((r) => {
        const tr = seen.get(r.id);
        if (tr) {
          setBadge(tr, r.status);
          tr.querySelector("[data-steps]").textContent = r.completed_steps + "/" + r.total_steps;
          tr.querySelector("[data-duration]").textContent = duration(r.duration_s);
        } else if (body.dataset.liveNew === "1" && payload.runs.indexOf(r) >= 0) {
          fresh.push(r);
          seen.set(r.id, null);
        }
      });
      if (fresh.length) {
        const empty = tbody.querySelector("tr.empty");
        if (empty) empty.remove();
        fresh.reverse().forEach((r) => tbody.insertBefore(runRow(r), tbody.firstChild));
      }
    });
  }

  // -- one run ------------------------------------------------------------------------------
  function liveRun() {
    const id = body.dataset.runId;
    const log = document.getElementById("log");
    const follow = document.getElementById("follow");
    const note = document.getElementById("live-note");
    const names = {};
    document.querySelectorAll("#steps tr[data-step]").forEach((tr) => {
      names[tr.dataset.step] = tr.querySelector("td.name a").textContent;
    });
    function group(step) {
      const key = step === null ? "" : String(step);
      const last = log.lastElementChild;
      if (last && last.dataset.step === key) return last.querySelector("pre");
      const det = el("details", "log-group"); det.open = true; det.dataset.step = key;
      const sum = el("summary");
      sum.appendChild(el("span", "step-label", step === null ? "before the first step" : (names[key] || "step " + (step + 1))));
      sum.appendChild(document.createTextNode(" "));
      sum.appendChild(el("span", "muted count", "0 lines"));
      det.appendChild(sum);
      const pre = el("pre", "log"); det.appendChild(pre); log.appendChild(det);
      return pre;
    }
    function addLines(lines) {
      const empty = document.getElementById("log-empty");
      if (empty) empty.remove();
      lines.forEach((line) => {
        const pre = group(line.step);
        const div = el("div", line.stream === "stderr" ? "ln err new" : "ln new");
        div.dataset.n = line.n;
        line.seg.forEach(([cls, text]) => div.appendChild(cls ? el("span", cls, text) : document.createTextNode(text)));
        if (line.cut) div.appendChild(el("span", "cut", " [" + line.cut + " more bytes not kept]"));
        pre.appendChild(div);
        const count = pre.parentNode.querySelector(".count");
        count.textContent = pre.childElementCount + " lines";
      });
      if (follow && follow.checked) window.scrollTo(0, document.body.scrollHeight);
    }
    function updateSteps(steps) {
      const tbody = document.querySelector("#steps tbody");
      steps.forEach((s) => {
        names[String(s.index)] = s.name;
        let tr = tbody && tbody.querySelector('tr[data-step="' + s.index + '"]');
        if (!tr && tbody) {
          tr = el("tr"); tr.dataset.step = s.index;
          tr.appendChild(el("td", "num", s.index + 1));
          const name = el("td", "name"), a = el("a", "", s.name); a.href = "#step-" + s.index;
          name.appendChild(a); tr.appendChild(name);
          const st = el("td"), badge = el("span", "badge", ""); badge.dataset.status = ""; st.appendChild(badge);
          tr.appendChild(st);
          const dur = el("td", "dur"); dur.dataset.duration = ""; tr.appendChild(dur);
          tr.appendChild(el("td", "usual opt", "-")); tr.appendChild(el("td", "bar-cell opt"));
          tbody.appendChild(tr);
        }
        if (!tr) return;
        setBadge(tr, s.status);
        tr.querySelector("[data-duration]").textContent = duration(s.duration_s);
      });
    }
    const es = new EventSource("/api/executions/" + encodeURIComponent(id) + "/events?after=" + body.dataset.after);
    note.textContent = "Live: new output appears here.";
    es.addEventListener("lines", (ev) => addLines(JSON.parse(ev.data)));
    es.addEventListener("steps", (ev) => updateSteps(JSON.parse(ev.data)));
    es.addEventListener("run", (ev) => {
      const r = JSON.parse(ev.data);
      setBadge(document.getElementById("run-status"), r.status);
    });
    es.addEventListener("end", (ev) => {
      es.close();
      const r = JSON.parse(ev.data);
      if (r.status) setBadge(document.getElementById("run-status"), r.status);
      const d = document.querySelector("[data-run-duration]");
      if (d && r.duration_s !== undefined) d.textContent = duration(r.duration_s);
      note.textContent = "The run has ended. ";
      const again = el("a", "", "Reload"); again.href = location.pathname; note.appendChild(again);
      body.dataset.ended = "1";
    });
  }

  if (body.classList.contains("page-list")) liveList();
  if (body.classList.contains("page-run") && body.dataset.open === "1") liveRun();
})();
