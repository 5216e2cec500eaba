"use strict";
// The checkout page: re-reads /api/v1/checkout/{id} every data-refresh-ms and shows the status as it changes
// (waiting → seen → confirming n of N → active; partial, over-payment, late and orphaned payments; the countdown).
(() => {
  const { byId, el, setText, show, isZero, duration, shortId, api, every, fillRows } = PayGo;
  const root = byId("checkout");
  const PHASES = {
    waiting: "Waiting for payment", seen: "Payment seen", confirming: "Confirming", partial: "Partly paid",
    active: "Paid: active", expired: "Expired", exhausted: "Used up", suspended: "Suspended", closed: "Closed",
  };
  const DONE = new Set(["active", "exhausted", "suspended", "closed"]);
  let deadline = null;

  function detail(view) {
    const required = view.confirmations_required;
    switch (view.phase) {
      case "waiting": return "Send the amount below.";
      case "seen": return `in the mempool: 0 of ${required} confirmations`;
      case "confirming": return `${view.confirmations_seen ?? required} of ${required} confirmations`;
      case "partial": return "Part of the amount arrived: send the rest.";
      case "active": return "The payment is confirmed. You can start streaming.";
      case "expired": return "The permission ended before it was paid.";
      default: return "";
    }
  }

  function notes(view) {
    const found = [];
    if (!isZero(view.amount_overpaid)) {
      found.push(`Over-payment: ${view.amount_overpaid} ${view.asset} more than asked. It is credited in full.`);
    }
    if (!isZero(view.amount_late)) {
      found.push(`${view.amount_late} ${view.asset} arrived after the permission expired: recorded, not credited.`);
    }
    if (view.orphaned_payments) {
      found.push(`${view.orphaned_payments} payment(s) left the chain (a reorganisation) and count for nothing.`);
    }
    if (view.unfunded_reason) found.push(`The card payment did not go through: ${view.unfunded_reason}.`);
    return found;
  }

  function render(view) {
    const phase = byId("phase");
    phase.dataset.phase = view.phase;
    phase.textContent = PHASES[view.phase] || view.phase;
    setText("phase-detail", detail(view));
    const received = !isZero(view.amount_received);
    setText("progress", `${view.amount_received} of ${view.amount_to_pay} ${view.asset} received` +
      (isZero(view.amount_missing) ? "" : `, ${view.amount_missing} missing`));
    show("progress", received && view.phase !== "active");
    const found = notes(view);
    byId("notes").replaceChildren(...found.map((text) => el("li", {}, text)));
    show("notes", found.length > 0);
    deadline = view.payment_window_seconds === null ? null : Date.now() + view.payment_window_seconds * 1000;
    countdown();
    fillRows("payments", view.payments, (payment) => [
      { node: el("code", { title: payment.txid }, shortId(payment.txid)) },
      { text: `${payment.amount} ${view.asset}`, class: "num" },
      payment.status === "seen" ? `${Math.max(payment.confirmations, 0)} of ${view.confirmations_required}` : "—",
      payment.status,
    ]);
    show("payments-box", view.payments.length > 0);
    const chain = byId("pay-chain");
    if (chain) {
      show(chain, Boolean(view.payment_uri));
      if (view.payment_uri) {
        if (byId("qr").getAttribute("src") !== view.payment_qr_url) byId("qr").setAttribute("src", view.payment_qr_url);
        byId("wallet-link").setAttribute("href", view.payment_uri);
        setText("payment-uri", view.payment_uri);
        setText("send-amount", view.amount_missing);
      }
    }
    const card = byId("pay-card");
    if (card) {
      show(card, Boolean(view.card_checkout_url));
      if (view.card_checkout_url) byId("card-link").setAttribute("href", view.card_checkout_url);
    }
    root.dataset.phase = view.phase;
  }

  function countdown() {
    const node = byId("countdown");
    if (deadline === null) {
      node.hidden = true;
      return;
    }
    const left = (deadline - Date.now()) / 1000;
    node.textContent = left > 0 ? `Time left to pay: ${duration(left)}` : "The payment window has closed.";
    node.hidden = false;
  }

  const stop = every(Number(root.dataset.refreshMs), async () => {
    const answer = await api(`/api/v1/checkout/${root.dataset.permissionId}`);
    if (answer.status !== 200) return;
    render(answer.body);
    if (DONE.has(answer.body.phase)) stop();
  });
  setInterval(countdown, 1000);
})();
