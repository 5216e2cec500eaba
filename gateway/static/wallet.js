"use strict";
// The wallet view: the permission token (asked once, kept in sessionStorage) reads /api/v1/wallet every
// data-refresh-ms: remaining amount and hours, the projected run-out (a countdown between reads), open sessions,
// the ledger and a QR code to pay or top up.
(() => {
  const { byId, el, setText, show, duration, localTime, api, errorText, every, fillRows, secretGate } = PayGo;
  const refreshMs = Number(byId("wallet-page").dataset.refreshMs);
  let runOut = null;  // {at: ms on the server's clock, offset: server minus local clock}
  let stop = null;

  function render(wallet) {
    const p = wallet.permission;
    const status = byId("status");
    status.textContent = p.status;
    status.dataset.phase = p.status === "pending_payment" ? "waiting" : p.status;
    setText("permission-line", `${p.approved_amount} ${p.asset} permission via ${p.funding_source}`);
    setText("remaining-amount", `${p.remaining_amount} ${p.asset}`);
    setText("remaining-hours", p.remaining_hours);
    setText("used-hours", p.used_hours);
    setText("rate", `${p.rate_per_hour} ${p.asset}`);
    setText("expires", localTime(p.expires_at));
    runOut = p.projected_run_out_at
      ? { at: Date.parse(p.projected_run_out_at), offset: Date.parse(wallet.server_time) - Date.now() } : null;
    tick();
    setText("updated", `Updated ${new Date().toLocaleTimeString()}`);
    fillRows("sessions", wallet.open_sessions, (s) => [
      s.vendor_name, localTime(s.started_at), { text: `${s.rate_per_hour} ${p.asset}`, class: "num" },
      { text: `${s.charged_amount} ${p.asset}`, class: "num" },
    ], "No session is running.");
    fillRows("ledger", wallet.ledger, (line) => [
      localTime(line.created_at), line.kind, { text: `${line.amount} ${p.asset}`, class: "num" },
      { text: `${line.balance_after} ${p.asset}`, class: "num" },
    ]);
    show("top-up", Boolean(p.payment_uri));
    if (p.payment_uri) {
      setText("top-up-title", p.status === "pending_payment" ? "Pay" : "Top up (any amount)");
      if (byId("top-up-qr").getAttribute("src") !== wallet.payment_qr_url) {
        byId("top-up-qr").setAttribute("src", wallet.payment_qr_url);
      }
      byId("top-up-link").setAttribute("href", p.payment_uri);
      byId("checkout-link").setAttribute("href", p.checkout_url);
    }
    byId("wallet").dataset.loaded = "true";
  }

  function tick() {
    if (runOut === null) {
      setText("run-out", "— (no session running)");
      return;
    }
    const left = (runOut.at - (Date.now() + runOut.offset)) / 1000;
    setText("run-out", left > 0 ? `in ${duration(left)}` : "now");
  }

  const gate = secretGate({
    name: "permission_token", form: "token-form", input: "token-input", error: "token-error", content: "wallet",
    onOpen: (token) => {
      stop = every(refreshMs, async () => {
        const answer = await api("/api/v1/wallet", { headers: { Authorization: `Bearer ${token}` } });
        if (answer.status === 401) {
          stop();
          gate.close(`The token was refused: ${errorText(answer)}`);
        } else if (answer.status === 200) {
          render(answer.body);
        }
      });
    },
  });
  byId("forget").addEventListener("click", () => { if (stop) stop(); gate.close(); });
  setInterval(tick, 1000);
})();
