/**
 * curves.svg of a run: loss (left panel), accuracies (middle) and the schedules of the learning rate and ε (right)
 * against the epoch. Self-contained SVG
 * written from the metrics records, so it opens in any browser without a plotting dependency.
 */

export type MetricRecord = Record<string, number | string | boolean | null>;

interface Series {
  key: string;
  label: string;
  color: string;
}

const LOSS_SERIES: Series[] = [
  { key: 'lossTotal', label: 'total loss', color: '#1f77b4' },
  { key: 'lossNatural', label: 'natural (CE)', color: '#2ca02c' },
  { key: 'lossRobust', label: 'robust term', color: '#d62728' },
];

const ACC_SERIES: Series[] = [
  { key: 'trainCleanAcc', label: 'train clean', color: '#9ecae1' },
  { key: 'trainAdvAcc', label: 'train adversarial', color: '#fdae6b' },
  { key: 'valCleanAcc', label: 'val clean', color: '#1f77b4' },
  { key: 'valRobustAcc', label: 'val PGD', color: '#d62728' },
  { key: 'waCleanAcc', label: 'WA val clean', color: '#17becf' },
  { key: 'waRobustAcc', label: 'WA val PGD', color: '#9467bd' },
  { key: 'valWorstClassRobustAcc', label: 'val PGD, worst class', color: '#8c564b' },
];

const W = 440;
const H = 300;
const PAD = { left: 52, right: 12, top: 28, bottom: 40 };

const fmt = (v: number): string => (Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2));
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function points(records: MetricRecord[], key: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const r of records) {
    const e = r.epoch;
    const v = r[key];
    if (typeof e === 'number' && typeof v === 'number' && Number.isFinite(v)) out.push([e, v]);
  }
  return out;
}

function panel(records: MetricRecord[], series: Series[], title: string, x0: number, yRange?: [number, number]): string {
  const all = series.map((s) => ({ s, pts: points(records, s.key) })).filter((d) => d.pts.length > 0);
  const epochs = records.map((r) => r.epoch).filter((e): e is number => typeof e === 'number');
  const eMin = Math.min(...epochs, 1);
  const eMax = Math.max(...epochs, eMin + 1);
  const values = all.flatMap((d) => d.pts.map((p) => p[1]));
  const [vMin, vMaxRaw] = yRange ?? [Math.min(...values, 0), Math.max(...values, 1e-9)];
  let vMax = vMaxRaw;
  if (!(vMax > vMin)) vMax = vMin + 1;
  const px = (e: number): number => x0 + PAD.left + ((e - eMin) / (eMax - eMin)) * (W - PAD.left - PAD.right);
  const py = (v: number): number => PAD.top + (1 - (v - vMin) / (vMax - vMin)) * (H - PAD.top - PAD.bottom);
  const parts: string[] = [];
  parts.push(`<text x="${x0 + W / 2}" y="16" text-anchor="middle" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<rect x="${x0 + PAD.left}" y="${PAD.top}" width="${W - PAD.left - PAD.right}" height="${H - PAD.top - PAD.bottom}" fill="none" stroke="#999"/>`);
  for (let i = 0; i <= 4; i++) {
    const v = vMin + ((vMax - vMin) * i) / 4;
    const y = py(v);
    parts.push(`<line x1="${x0 + PAD.left}" x2="${x0 + W - PAD.right}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${x0 + PAD.left - 4}" y="${y + 4}" text-anchor="end">${fmt(v)}</text>`);
  }
  const ticks = Math.min(5, eMax - eMin);
  for (let i = 0; i <= ticks; i++) {
    const e = Math.round(eMin + ((eMax - eMin) * i) / ticks);
    parts.push(`<text x="${px(e)}" y="${H - PAD.bottom + 14}" text-anchor="middle">${e}</text>`);
  }
  parts.push(`<text x="${x0 + W / 2}" y="${H - 6}" text-anchor="middle">epoch</text>`);
  for (const { s, pts } of all) {
    const d = pts.map(([e, v], j) => `${j === 0 ? 'M' : 'L'}${px(e).toFixed(1)},${py(v).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"/>`);
    for (const [e, v] of pts) parts.push(`<circle cx="${px(e).toFixed(1)}" cy="${py(v).toFixed(1)}" r="2" fill="${s.color}"/>`);
  }
  // The legend goes on top of every curve, on a translucent box, in the right-hand corner (top or bottom) where
  // fewer points of the last epochs fall, so it hides as little as possible.
  const boxH = all.length * 13 + 6;
  const late = all.flatMap((d) => d.pts.filter(([e]) => e >= eMin + 0.6 * (eMax - eMin)).map(([, v]) => v));
  const high = late.filter((v) => v > (vMin + vMax) / 2).length;
  const top = high <= late.length - high ? PAD.top + 1 : H - PAD.bottom - boxH - 1;
  parts.push(`<rect x="${x0 + W - 134}" y="${top}" width="120" height="${boxH}" fill="white" fill-opacity="0.85"/>`);
  all.forEach(({ s }, i) => {
    const ly = top + 11 + i * 13;
    parts.push(`<line x1="${x0 + W - 130}" x2="${x0 + W - 116}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`);
    parts.push(`<text x="${x0 + W - 112}" y="${ly}">${esc(s.label)}</text>`);
  });
  return parts.join('\n');
}

/**
 * The learning rate and ε of each epoch as fractions of their largest value, so that both share one axis; the
 * legend names the largest values (ε in 1/255 units).
 */
function schedulePanel(records: MetricRecord[], x0: number): string {
  const max = (key: string): number => Math.max(0, ...records.map((r) => (typeof r[key] === 'number' ? (r[key] as number) : 0)));
  const lrMax = max('lr');
  const epsMax = max('epsilon');
  const rel = records.map((r) => ({
    epoch: r.epoch ?? null,
    lrRel: typeof r.lr === 'number' && lrMax > 0 ? r.lr / lrMax : null,
    epsRel: typeof r.epsilon === 'number' && epsMax > 0 ? r.epsilon / epsMax : null,
  }));
  const series: Series[] = [
    { key: 'lrRel', label: `lr (max ${Number(lrMax.toPrecision(3))})`, color: '#ff7f0e' },
    { key: 'epsRel', label: `ε (max ${Number((epsMax * 255).toPrecision(3))}/255)`, color: '#8c564b' },
  ];
  return panel(rel, series, 'schedule (fraction of max)', x0, [0, 1]);
}

/** The SVG text of the training curves. */
export function curvesSvg(records: MetricRecord[], title = 'training curves'): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${3 * W}" height="${H + 20}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<g transform="translate(0,20)">`,
    panel(records, LOSS_SERIES, 'loss', 0),
    panel(records, ACC_SERIES, 'accuracy', W, [0, 1]),
    schedulePanel(records, 2 * W),
    `</g>`,
    `<text x="8" y="14" font-size="12">${esc(title)}</text>`,
    `</svg>`,
    '',
  ].join('\n');
}
