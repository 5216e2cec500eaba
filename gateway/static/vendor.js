"use strict";
// The vendor dashboard over the vendor API (X-API-Key from sessionStorage): earnings per day as a chart, sessions
// with filters and a CSV export, webhook deliveries with their attempts and a redeliver button, key rotation.
(() => {
  const { byId, el, setText, show, duration, localTime, shortId, api, errorText, every, store, fillRows, secretGate,
          download } = PayGo;
  const refreshMs = Number(byId("vendor-page").dataset.refreshMs);
  const CHART_DAYS = 30;
  let key = null;
  let stop = null;
  let sessionPages = 1;  // the first page refreshes by itself; once more are loaded, only the filters reload

  const call = (path, options = {}) => api(path, { ...options, headers: { "X-API-Key": key } });

  function sessionQuery(extra = {}) {
    const query = new URLSearchParams({ limit: "50", ...extra });
    const filters = { status: "filter-status", from: "filter-from", to: "filter-to", wallet: "filter-wallet" };
    for (const [name, id] of Object.entries(filters)) {
      const value = byId(id).value.trim();
      if (value) query.set(name, value);
    }
    return query;
  }

  function sessionRow(s) {
    return [localTime(s.started_at), s.status, { node: el("code", { title: s.user_wallet_address },
      shortId(s.user_wallet_address)) }, duration(s.duration_seconds), { text: `${s.rate_per_hour} ${s.asset}`,
      class: "num" }, { text: `${s.charged_amount} ${s.asset}`, class: "num" }];
  }

  let nextCursor = null;
  async function loadSessions({ append = false } = {}) {
    const query = sessionQuery(append && nextCursor ? { cursor: nextCursor } : {});
    const answer = await call(`/api/v1/vendor/sessions?${query}`);
    show("sessions-error", answer.status !== 200);
    if (answer.status !== 200) {
      setText("sessions-error", errorText(answer));
      return;
    }
    const body = byId("sessions");
    if (append) {
      const holder = el("tbody");
      fillRows(holder, answer.body.sessions, sessionRow);
      if (answer.body.sessions.length) body.append(...holder.children);
      sessionPages += 1;
    } else {
      fillRows(body, answer.body.sessions, sessionRow, "No session matches.");
      sessionPages = 1;
    }
    nextCursor = answer.body.next_cursor;
    show("more", Boolean(nextCursor));
  }

  async function loadChart() {
    const today = new Date();
    const first = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - CHART_DAYS + 1));
    const from = first.toISOString().slice(0, 10);
    const answer = await call(`/api/v1/vendor/charges/summary?group_by=day&from=${from}`);
    if (answer.status !== 200) return;
    const times = PayGoCharts.days(from, today.toISOString().slice(0, 10));
    const assets = [...new Set(answer.body.rows.map((row) => row.asset))];
    const holder = byId("charts");
    if (!assets.length) {
      holder.replaceChildren(el("p", { class: "muted" }, "No earnings in the last 30 days."));
      return;
    }
    holder.replaceChildren(...assets.map((asset) => el("div", { class: "chart", dataset: { asset } })));
    for (const asset of assets) {
      const byDay = new Map(answer.body.rows.filter((row) => row.asset === asset).map((row) => [row.day, row.amount]));
      PayGoCharts.time(holder.querySelector(`[data-asset="${asset}"]`), {
        times, step: 86400, bars: true, series: [{ label: `${asset} earned`, exact: times.map((t) => byDay.get(PayGoCharts.isoDay(t)) ?? null) }],
      });
    }
  }

  async function loadDeliveries() {
    const answer = await call("/api/v1/vendor/webhooks/deliveries?limit=20");
    if (answer.status !== 200) return;
    fillRows("deliveries", answer.body.deliveries, (d) => [
      d.event_type, d.status, String(d.attempts), localTime(d.created_at),
      { node: el("details", {}, el("summary", {}, `${d.log.length} attempt(s)`), el("ul", {}, ...d.log.map((a) =>
        el("li", {}, `#${a.attempt} ${a.outcome} ${a.status_code ?? ""} ${a.error ?? ""} (${a.duration_ms} ms, ` +
          `${localTime(a.attempted_at)})`)))) },
      { node: d.status === "pending" ? "" : el("button", { class: "secondary", type: "button", dataset: { redeliver: d.id } },
        "Redeliver") },
    ], "No webhook message yet.");
  }

  async function loadAccount() {
    const answer = await call("/api/v1/vendor/account");
    if (answer.status === 401) {
      stop();
      gate.close(`The key was refused: ${errorText(answer)}`);
      return false;
    }
    if (answer.status !== 200) return false;
    setText("vendor-name", answer.body.name);
    setText("webhook-url", answer.body.webhook_url ? `Sent to ${answer.body.webhook_url}`
      : "No webhook URL is set (the operator sets it).");
    fillRows("keys", answer.body.keys, (k) => [{ node: el("code", {}, k.key_prefix) }, localTime(k.created_at),
      k.revoked_at ? `revoked ${localTime(k.revoked_at)}` : (k.expires_at ? localTime(k.expires_at) : "—"),
      k.live ? "yes" : "no"]);
    return true;
  }

  async function refresh() {
    if (!(await loadAccount())) return;
    await Promise.all([loadChart(), loadDeliveries(), sessionPages === 1 ? loadSessions() : null]);
    byId("dashboard").dataset.loaded = "true";
  }

  const gate = secretGate({
    name: "vendor_key", form: "key-form", input: "key-input", error: "key-error", content: "dashboard",
    onOpen: (secret) => {
      key = secret;
      stop = every(refreshMs, refresh);
    },
  });

  byId("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadSessions();
  });
  byId("more").addEventListener("click", () => loadSessions({ append: true }));
  byId("export").addEventListener("click", async () => {
    const query = sessionQuery({ format: "csv" });
    query.delete("limit");
    const response = await fetch(`/api/v1/vendor/sessions?${query}`, { headers: { "X-API-Key": key } });
    if (response.ok) download(await response.blob(), "sessions.csv");
  });
  byId("deliveries").addEventListener("click", async (event) => {
    const button = event.target.closest("[data-redeliver]");
    if (!button) return;
    button.disabled = true;
    const answer = await call(`/api/v1/vendor/webhooks/deliveries/${button.dataset.redeliver}/redeliver`,
                              { method: "POST" });
    button.textContent = answer.status === 200 ? "Queued" : errorText(answer);
    await loadDeliveries();
  });
  byId("rotate").addEventListener("click", () => show("rotate-confirm", true));
  byId("rotate-confirm").addEventListener("click", async () => {
    show("rotate-confirm", false);
    const answer = await call("/api/v1/vendor/keys/rotate", { method: "POST" });
    if (answer.status !== 201) return;
    key = answer.body.api_key;
    store.set("vendor_key", key);
    setText("new-key", key);
    setText("old-key-expiry", localTime(answer.body.previous_keys_expire_at));
    show("new-key-box", true);
    await loadAccount();
  });
  byId("forget").addEventListener("click", () => {
    if (stop) stop();
    show("new-key-box", false);
    gate.close();
  });
})();
