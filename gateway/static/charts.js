"use strict";
// Time charts on uPlot (vendored). Amounts arrive as exact decimal strings: Number() of them only places a point on
// the canvas; the legend shows the exact string of the point under the cursor, never a float.
const PayGoCharts = (() => {
  const COLORS = ["#0b5cad", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#1098ad", "#5c940d", "#495057"];
  const charts = new Map();

  // `times`: unix seconds, `step` seconds apart; each series {label, exact: [string|null] (amounts) or values:
  // [number]}. `bars` draws one series as bars (amounts per day); otherwise each series is a line.
  function time(container, { times, step, series, bars = false, height = 240 }) {
    const node = typeof container === "string" ? document.getElementById(container) : container;
    charts.get(node)?.destroy();
    const data = [times, ...series.map((s) => s.values ?? s.exact.map((text) => (text === null ? null : Number(text))))];
    const chart = new uPlot({
      width: Math.max(node.clientWidth, 240),
      height,
      tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"),  // days and hours in UTC
      scales: { x: { time: true, range: (u, min, max) => [min - step / 2, max + step / 2] } },
      series: [
        {},
        ...series.map((s, index) => ({
          label: s.label,
          stroke: COLORS[index % COLORS.length],
          fill: bars ? `${COLORS[index % COLORS.length]}99` : undefined,
          width: bars ? 1 : 2,
          paths: bars ? uPlot.paths.bars({ size: [0.7, 48] }) : undefined,
          points: { show: !bars && times.length <= 60, size: 5 },
          spanGaps: false,
          value: s.exact ? (u, v, si, idx) => (idx === null || s.exact[idx] === null ? "—" : s.exact[idx]) : undefined,
        })),
      ],
    }, data, node);
    charts.set(node, chart);
    node.dataset.points = String(times.length);
    return chart;
  }

  window.addEventListener("resize", () => {
    for (const [node, chart] of charts) chart.setSize({ width: Math.max(node.clientWidth, 240), height: chart.height });
  });

  // Unix seconds of the UTC midnight of each "YYYY-MM-DD" from `first` to `last`.
  function days(first, last) {
    const out = [];
    for (let t = Date.parse(`${first}T00:00:00Z`); t <= Date.parse(`${last}T00:00:00Z`); t += 86400000) out.push(t / 1000);
    return out;
  }

  const isoDay = (seconds) => new Date(seconds * 1000).toISOString().slice(0, 10);

  return { time, days, isoDay };
})();
