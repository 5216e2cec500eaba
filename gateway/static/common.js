"use strict";
// Helpers shared by the PayGo pages. Amounts are shown exactly as the API sends them (decimal strings): nothing
// here does arithmetic on money. Credentials live only in this tab's sessionStorage and travel in headers.
const PayGo = (() => {
  const byId = (id) => document.getElementById(id);

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === null || value === undefined) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
    return node;
  }

  function setText(id, text) { byId(id).textContent = text ?? ""; }
  function show(node, visible) { (typeof node === "string" ? byId(node) : node).hidden = !visible; }

  // An exact decimal string is zero ("0", "0.00000000"): a check of its characters, not arithmetic.
  const isZero = (amount) => /^-?0*(\.0*)?$/.test(String(amount));

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const days = Math.floor(seconds / 86400), hours = Math.floor(seconds % 86400 / 3600);
    const minutes = Math.floor(seconds % 3600 / 60), rest = seconds % 60;
    if (days) return `${days} d ${hours} h ${minutes} min`;
    if (hours) return `${hours} h ${String(minutes).padStart(2, "0")} min ${String(rest).padStart(2, "0")} s`;
    return `${minutes} min ${String(rest).padStart(2, "0")} s`;
  }

  const localTime = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
  const shortId = (text) => (text && text.length > 20 ? `${text.slice(0, 10)}…${text.slice(-6)}` : text ?? "");

  // GET or POST JSON with an optional credential header; resolves to {status, body} (body null when not JSON).
  async function api(path, { method = "GET", headers = {}, body } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers }, cache: "no-store" };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    const type = response.headers.get("Content-Type") || "";
    return { status: response.status, body: type.includes("application/json") ? await response.json() : null,
             response };
  }

  const errorText = (answer) => (answer.body && answer.body.error
    ? `${answer.body.error.message} (${answer.body.error.code})` : `HTTP ${answer.status}`);

  // Run `task` now and then every `ms` after each run ends; returns a function that stops it.
  function every(ms, task) {
    let timer = null, stopped = false;
    const run = async () => {
      try { await task(); } catch (error) { console.error(error); }
      if (!stopped) timer = setTimeout(run, ms);
    };
    run();
    return () => { stopped = true; clearTimeout(timer); };
  }

  const store = {
    get: (name) => sessionStorage.getItem(`paygo.${name}`),
    set: (name, value) => sessionStorage.setItem(`paygo.${name}`, value),
    forget: (name) => sessionStorage.removeItem(`paygo.${name}`),
  };

  // Fill a table body with one row per item; `cells(item)` gives the row's cells (strings, nodes or
  // {text, class}).
  function fillRows(tbody, items, cells, empty = "Nothing yet.") {
    const body = typeof tbody === "string" ? byId(tbody) : tbody;
    const columns = body.closest("table").querySelectorAll("thead th").length || 1;
    body.replaceChildren(...(items.length ? items.map((item) => el("tr", {}, ...cells(item).map((cell) =>
      cell !== null && typeof cell === "object" && !(cell instanceof Node)
        ? el("td", { class: cell.class }, cell.node ?? cell.text) : el("td", {}, cell))))
      : [el("tr", {}, el("td", { colspan: columns, class: "muted" }, empty))]));
  }

  // A page behind a secret: the form asks for it once, the tab keeps it in sessionStorage, `onOpen(secret)` runs
  // with it; `close(message)` forgets it and shows the form again (with a message, e.g. "refused").
  function secretGate({ name, form, input, error, content, onOpen }) {
    const formNode = byId(form), errorNode = byId(error), contentNode = byId(content);
    const close = (message) => {
      store.forget(name);
      contentNode.hidden = true;
      formNode.hidden = false;
      errorNode.textContent = message || "";
      errorNode.hidden = !message;
    };
    const open = (secret) => {
      formNode.hidden = true;
      errorNode.hidden = true;
      contentNode.hidden = false;
      onOpen(secret);
    };
    formNode.addEventListener("submit", (event) => {
      event.preventDefault();
      const secret = byId(input).value.trim();
      byId(input).value = "";
      if (!secret) return;
      store.set(name, secret);
      open(secret);
    });
    const saved = store.get(name);
    if (saved) open(saved);
    return { close };
  }

  function download(blob, filename) {
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // Buttons with data-copy="<element id>" copy that element's text.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const text = byId(button.dataset.copy).textContent;
    navigator.clipboard?.writeText(text).then(() => {
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  });

  return { byId, el, setText, show, isZero, duration, localTime, shortId, api, errorText, every, store, fillRows,
           secretGate, download };
})();
