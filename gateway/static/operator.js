"use strict";
// The operator dashboard (operator key from sessionStorage): health of every dependency, active sessions and revenue
// per vendor as charts, pending payments, the webhook backlog, scheduler lag, and one permission's audit trail.
(() => {
  const { byId, el, setText, show, duration, localTime, shortId, api, errorText, every, fillRows, secretGate } = PayGo;
  const refreshMs = Number(byId("operator-page").dataset.refreshMs);
  const DAYS = 7;
  let key = null;
  let stop = null;

  const call = (path) => api(path, { headers: { "X-API-Key": key } });
  const permissionCell = (id) => ({ node: id ? el("code", { title: id }, shortId(id)) : "—" });
  const state = (ok) => ({ text: ok ? "ok" : "failing", class: ok ? "ok" : "bad" });

  function renderHealth(health) {
    const badge = byId("health-status");
    badge.textContent = `health: ${health.status}`;
    badge.dataset.phase = health.status === "ok" ? "active" : (health.status === "degraded" ? "partial" : "expired");
    fillRows("health", Object.entries(health.checks), ([name, check]) => {
      const { ok, ...rest } = check;
      return [name, state(ok), { node: el("code", { class: "wrap" }, JSON.stringify(rest)) }];
    });
    const webhooks = health.checks.webhooks;
    setText("webhook-counts", webhooks ? `${webhooks.pending} / ${webhooks.dead}` : "—");
    const scheduler = health.checks.scheduler;
    setText("scheduler-lag", scheduler && scheduler.lag_seconds !== null ? duration(scheduler.lag_seconds) : "no tick yet");
  }

  function renderOverview(overview) {
    setText("active-sessions", overview.active_sessions);
    setText("active-permissions", overview.active_permissions);
    setText("awaiting-count", overview.permissions_awaiting_payment);
    fillRows("jobs", overview.jobs, (job) => [job.job_name, localTime(job.last_succeeded_at),
      job.seconds_since_success === null ? "—" : duration(job.seconds_since_success), String(job.runs),
      job.failing ? { text: job.last_error ?? "failing", class: "bad" } : state(true)], "No job has run yet.");
    fillRows("pending-payments", overview.pending_payments, (q) => [permissionCell(q.permission_id),
      { text: `${q.amount} ${q.asset}`, class: "num" }, String(q.confirmations), localTime(q.first_seen_at)]);
    fillRows("awaiting", overview.awaiting, (a) => [permissionCell(a.permission_id),
      { text: `${a.amount_to_pay} ${a.asset}`, class: "num" }, { text: `${a.amount_received} ${a.asset}`, class: "num" },
      localTime(a.payment_due_at)]);
    fillRows("backlog", overview.webhook_backlog, (b) => [b.kind, b.event_type ?? "—", b.status, String(b.messages),
      String(b.retried), b.oldest_age_seconds === null ? "—" : duration(b.oldest_age_seconds)], "No backlog.");
  }

  function renderSeries(series) {
    PayGoCharts.time("sessions-chart", {
      times: series.active_sessions.map((point) => Date.parse(point.hour) / 1000),
      step: 3600,
      series: [{ label: "active sessions", values: series.active_sessions.map((point) => point.sessions) }],
    });
    const holder = byId("revenue-charts");
    const assets = [...new Set(series.revenue.map((point) => point.asset))];
    if (!assets.length) {
      holder.replaceChildren(el("p", { class: "muted" }, `No revenue in the last ${DAYS} days.`));
      return;
    }
    const lastDay = new Date().toISOString().slice(0, 10);
    const firstDay = PayGoCharts.isoDay(Date.parse(`${lastDay}T00:00:00Z`) / 1000 - (DAYS - 1) * 86400);
    const times = PayGoCharts.days(firstDay, lastDay);
    holder.replaceChildren(...assets.map((asset) => el("div", { class: "chart", dataset: { asset } })));
    for (const asset of assets) {
      const points = series.revenue.filter((point) => point.asset === asset);
      const vendors = [...new Map(points.map((point) => [point.vendor_id, point.vendor_name]))];
      PayGoCharts.time(holder.querySelector(`[data-asset="${asset}"]`), {
        times,
        step: 86400,
        bars: vendors.length === 1,
        series: vendors.map(([vendorId, name]) => {
          const byDay = new Map(points.filter((p) => p.vendor_id === vendorId).map((p) => [p.day, p.amount]));
          return { label: `${name} (${asset})`, exact: times.map((t) => byDay.get(PayGoCharts.isoDay(t)) ?? null) };
        }),
      });
    }
  }

  async function refresh() {
    const overview = await call("/api/v1/admin/overview");
    if (overview.status === 401 || overview.status === 403) {
      stop();
      gate.close(`The operator key was refused: ${errorText(overview)}`);
      return;
    }
    if (overview.status !== 200) return;
    renderOverview(overview.body);
    const [health, series] = await Promise.all([call("/api/v1/health"), call(`/api/v1/admin/timeseries?days=${DAYS}`)]);
    if (health.body && health.body.checks) renderHealth(health.body);
    if (series.status === 200) renderSeries(series.body);
    setText("updated", `Updated ${new Date().toLocaleTimeString()}`);
    byId("dashboard").dataset.loaded = "true";
  }

  const gate = secretGate({
    name: "operator_key", form: "key-form", input: "key-input", error: "key-error", content: "dashboard",
    onOpen: (secret) => {
      key = secret;
      stop = every(refreshMs, refresh);
    },
  });

  byId("audit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = byId("audit-id").value.trim();
    const answer = await call(`/api/v1/admin/permissions/${encodeURIComponent(id)}/audit`);
    show("audit-error", answer.status !== 200);
    show("audit", answer.status === 200);
    if (answer.status !== 200) {
      setText("audit-error", errorText(answer));
      return;
    }
    const trail = answer.body;
    setText("audit-summary", `${trail.funding_source} permission in ${trail.asset}, now ${trail.status}`);
    fillRows("audit-changes", trail.changes, (c) => [localTime(c.created_at), c.action,
      `${c.old_status ?? "—"} → ${c.new_status}`, { text: `${c.old_balance ?? "—"} → ${c.new_balance}`, class: "num" }]);
    fillRows("audit-ledger", trail.ledger, (line) => [localTime(line.created_at), line.kind,
      { text: line.amount, class: "num" }, { text: line.balance_after, class: "num" }, line.memo ?? ""]);
  });
  byId("forget").addEventListener("click", () => {
    if (stop) stop();
    gate.close();
  });
})();
