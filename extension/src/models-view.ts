/**
 * The Models panel's pieces of DOM and formatting: gate badges, metric tables (candidate against the
 * champion), what a candidate changed, what a rollback changes, history filtering and labels.
 */
import { Candidate, Change, GateResult, HistoryEvent, Metrics } from './models-api';
import { text as el } from './models-dialogs';

export function gateState(g: GateResult): string {
  return g.passed === null ? 'not checked' : g.passed ? 'pass' : 'fail';
}

export function gateText(g: GateResult): string {
  const value = g.value === null ? '' : ` = ${fmt(g.value)}`;
  const threshold = g.threshold === null ? '' : ` (threshold ${fmt(g.threshold)})`;
  return `${g.gate}${value}${threshold}${g.note ? ' — ' + g.note : ''}`;
}

/** The metrics the gates name (or all of them when there are no gates). */
export function headline(metrics: Metrics, gateMetrics: string[]): [string, number][] {
  const rows: [string, number][] = [];
  for (const [file, values] of Object.entries(metrics)) {
    for (const [name, value] of Object.entries(values)) {
      if (!gateMetrics.length || gateMetrics.includes(name) || gateMetrics.includes(`${file}:${name}`)) {
        rows.push([name, value]);
      }
    }
  }
  return rows;
}

export function metricsTable(rows: [string, number][]): HTMLElement {
  const table = el('table', 'jp-nbprod-metrics', '');
  for (const [name, value] of rows) {
    const tr = el('tr', '', '');
    tr.appendChild(el('th', '', name));
    tr.appendChild(el('td', '', fmt(value)));
    table.appendChild(tr);
  }
  return table;
}

export function compareTable(candidate: Metrics, champion: Metrics | null, version: string | null, gateMetrics: string[]): HTMLElement {
  const table = el('table', 'jp-nbprod-compare', '');
  const head = el('tr', '', '');
  for (const label of ['metric', 'candidate', version ? `champion ${version}` : 'champion', 'Δ']) {
    head.appendChild(el('th', '', label));
  }
  table.appendChild(head);
  for (const [file, values] of Object.entries(candidate)) {
    for (const [name, value] of Object.entries(values)) {
      if (gateMetrics.length && !gateMetrics.includes(name) && !gateMetrics.includes(`${file}:${name}`)) {
        continue;
      }
      const base = champion?.[file]?.[name];
      const tr = el('tr', '', '');
      tr.appendChild(el('td', '', name));
      tr.appendChild(el('td', '', fmt(value)));
      tr.appendChild(el('td', '', base === undefined ? '—' : fmt(base)));
      const delta = base === undefined ? null : value - base;
      tr.appendChild(el('td', delta === null || delta === 0 ? '' : delta > 0 ? 'jp-nbprod-up' : 'jp-nbprod-down',
        delta === null ? '—' : (delta > 0 ? '+' : '') + delta.toFixed(4)));
      table.appendChild(tr);
    }
  }
  return table;
}

export function changedList(c: Candidate): HTMLElement {
  const list = el('ul', 'jp-nbprod-changed', '');
  const params = Object.entries(c.params_set ?? {});
  const items = [
    `params: ${params.length ? params.map(([k, v]) => `${k}=${String(v)}`).join(', ') : 'as in params.yaml'}`,
    `code and files from the working tree: ${c.files_from_working_tree?.length ? c.files_from_working_tree.join(', ') : 'none (HEAD ' + c.base.slice(0, 10) + ')'}`,
    `data: ${c.data_sources?.length ? c.data_sources.join(', ') : 'unchanged'}`
  ];
  for (const item of items) {
    list.appendChild(el('li', '', item));
  }
  return list;
}

export function changesTable(changes: Change[]): HTMLElement {
  if (!changes.length) {
    return el('div', 'jp-nbprod-muted jp-nbprod-changes', 'Nothing: the working tree already holds this version.');
  }
  const table = el('table', 'jp-nbprod-changes', '');
  const head = el('tr', '', '');
  for (const label of ['', 'what', 'now', 'after the rollback']) {
    head.appendChild(el('th', '', label));
  }
  table.appendChild(head);
  for (const change of changes) {
    const tr = el('tr', '', '');
    tr.dataset.kind = change.kind;
    tr.appendChild(el('td', '', change.kind));
    tr.appendChild(el('td', '', change.name));
    tr.appendChild(el('td', '', show(change.now, change.kind)));
    tr.appendChild(el('td', '', show(change.then, change.kind)));
    table.appendChild(tr);
  }
  return table;
}

export function matches(e: HistoryEvent, filter: string, action: string): boolean {
  if (action && e.action !== action) {
    return false;
  }
  const needle = filter.trim().toLowerCase();
  if (!needle) {
    return true;
  }
  return [e.version, e.by, e.note, e.candidate, e.action, e.override, e.when ?? e.date]
    .some(v => typeof v === 'string' && v.toLowerCase().includes(needle));
}

export function actionLabel(e: HistoryEvent): string {
  switch (e.action) {
    case 'approve':
      return `approved${e.candidate ? ' ' + e.candidate + ' as' : ''}`;
    case 'reject':
      return `rejected ${e.candidate ?? ''}`;
    case 'rollback':
      return `rolled back${e.from ? ' from ' + e.from : ''} to`;
    case 'register':
      return 'registered';
    case 'kept':
      return 'kept working state as';
    default:
      return e.action;
  }
}

function show(value: unknown, kind: string): string {
  if (value === null || value === undefined) {
    return '—';
  }
  if (kind === 'data' && typeof value === 'string') {
    return value.slice(0, 12);
  }
  return typeof value === 'number' ? fmt(value) : String(value);
}

function fmt(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
}

export function when(iso: string): string {
  return iso ? iso.slice(0, 16).replace('T', ' ') : '?';
}

export function section(title: string, cls: string): HTMLElement {
  const box = el('div', `jp-nbprod-models-section ${cls}`, '');
  box.appendChild(el('h3', '', title));
  return box;
}

export function button(label: string, cls: string, disabled: boolean, onClick: () => void): HTMLButtonElement {
  const node = el('button', `jp-nbprod-button ${cls}`, label) as HTMLButtonElement;
  node.type = 'button';
  node.disabled = disabled;
  node.addEventListener('click', onClick);
  return node;
}

export function link(label: string, cls: string, onClick: () => void): HTMLElement {
  const node = el('a', `jp-nbprod-link ${cls}`, label);
  node.setAttribute('href', '#');
  node.addEventListener('click', event => {
    event.preventDefault();
    onClick();
  });
  return node;
}
