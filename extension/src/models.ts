/**
 * The Models side panel: what is in production, candidates waiting for a decision (gates, metrics
 * against the champion, what changed, comparison report), approve / reject with a note, retrain as a
 * followed and cancellable run, the history (filterable, each version's lineage) and rollback to a
 * version after seeing what it changes. Every action is a REST call to the CLI's code path.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { askDecision, confirmOverride, text as el } from './models-dialogs';
import { Candidate, HistoryEvent, ModelsApi, ModelsOverview, RunEventLine, VersionDetails } from './models-api';
import {
  gateState,
  gateText,
  headline,
  metricsTable,
  compareTable,
  changedList,
  changesTable,
  matches,
  actionLabel,
  when,
  section,
  button,
  link
} from './models-view';

interface Following {
  id: string;
  running: boolean;
  offset: number;
  step: string;
  stage: string | null;
  index: number;
  cells: number;
  outcome: string | null;
  failed: boolean;
}

export class ModelsPanel extends Widget {
  constructor(private _api: ModelsApi) {
    super();
    this.id = 'nbprod-models-panel';
    this.addClass('jp-nbprod-panel');
    this.addClass('jp-nbprod-models');
    this.title.caption = 'nbprod models';
    this._makeFilters();
    this._render();
  }

  /** The server-relative folder whose project the panel shows (the current notebook's folder). */
  setPath(path: string): void {
    if (path !== this._path) {
      this._path = path;
      this._overview = null;
      this._details = null;
      this._run = null;
      this.refreshSoon();
    }
  }

  refreshSoon(): void {
    if (this.isVisible) {
      void this.refresh();
    } else {
      this._stale = true;
    }
  }

  async refresh(): Promise<void> {
    const path = this._path;
    this._busy = 'Reading the registry…';
    this._render();
    try {
      this._overview = await this._api.overview(path);
      this._error = null;
      const running = this._overview.running;
      if (running && (!this._run || this._run.id !== running)) {
        this._run = following(running);
        void this._follow(path);
      }
    } catch (error) {
      this._error = (error as Error).message;
    } finally {
      this._busy = null;
      this._render();
    }
  }

  async retrain(): Promise<void> {
    const path = this._path;
    const set = this._setInput.value
      .split(/[\n,]/)
      .map(s => s.trim())
      .filter(s => s);
    try {
      const started = await this._api.retrain(path, this._noteInput.value.trim(), set);
      this._noteInput.value = '';
      this._setInput.value = '';
      this._run = following(started.id);
      this._error = null;
      this._render();
      await this._follow(path);
    } catch (error) {
      this._error = (error as Error).message;
      this._render();
    }
  }

  async cancel(): Promise<void> {
    if (this._run?.running) {
      try {
        await this._api.cancel(this._path, this._run.id);
      } catch (error) {
        this._error = (error as Error).message;
        this._render();
      }
    }
  }

  async approve(candidate: Candidate): Promise<void> {
    const failed = candidate.gates.filter(g => g.passed === false).map(gateText);
    const decision = await askDecision({
      title: `Approve ${candidate.id} for production`,
      intro: el('p', '', `Registers ${candidate.id} as the next version of ${this._overview?.model} and assigns it to prod.`),
      accept: failed.length ? 'Approve with override' : 'Approve',
      noteLabel: 'Note (why this model goes to production)',
      askName: !!this._overview?.user.shared_token,
      failedGates: failed,
      warn: failed.length > 0
    });
    if (!decision || (failed.length && !(await confirmOverride(candidate.id, failed, decision.override ?? '')))) {
      return;
    }
    await this._act(`Approving ${candidate.id}…`, async () => {
      const done = await this._api.approve(this._path, candidate.id, decision);
      this._notice = `${candidate.id} is now ${done.version} in production (approved by ${done.by}).`;
    });
  }

  async reject(candidate: Candidate): Promise<void> {
    const decision = await askDecision({
      title: `Reject ${candidate.id}`,
      intro: el('p', '', `Records that ${candidate.id} is rejected; production does not change.`),
      accept: 'Reject',
      noteLabel: 'Note (why the candidate is rejected)',
      askName: !!this._overview?.user.shared_token,
      warn: true
    });
    if (decision) {
      await this._act(`Rejecting ${candidate.id}…`, async () => {
        const done = await this._api.reject(this._path, candidate.id, decision);
        this._notice = `${candidate.id} rejected (${done.tag}).`;
      });
    }
  }

  /** Lineage of a version, and what a rollback to it would change. */
  async showVersion(version: string): Promise<void> {
    await this._act(`Reading ${version}…`, async () => {
      this._details = await this._api.version(this._path, version);
    }, false);
  }

  async rollback(details: VersionDetails): Promise<void> {
    const intro = document.createElement('div');
    intro.appendChild(
      el('p', '', `Restores ${details.version}'s code, params, data and model into the working tree and assigns it to prod. ` +
        'Your current working state is kept as a version first.')
    );
    intro.appendChild(changesTable(details.changes));
    const decision = await askDecision({
      title: `Roll back to ${details.version}`,
      intro,
      accept: `Roll back to ${details.version}`,
      noteLabel: 'Note (why production goes back)',
      askName: !!this._overview?.user.shared_token,
      warn: true
    });
    if (decision) {
      await this._act(`Rolling back to ${details.version}…`, async () => {
        const done = await this._api.rollback(this._path, details.version, decision);
        this._notice = `Production is ${done.version} again` + (done.kept ? `; your working state was kept as ${done.kept}.` : '.');
        this._details = null;
      });
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (this._stale || !this._overview) {
      this._stale = false;
      void this.refresh();
    }
  }

  private async _act(busy: string, work: () => Promise<void>, refresh = true): Promise<void> {
    this._busy = busy;
    this._notice = null;
    this._render();
    try {
      await work();
      this._error = null;
    } catch (error) {
      this._error = (error as Error).message;
    } finally {
      this._busy = null;
    }
    if (refresh) {
      await this.refresh();
    } else {
      this._render();
    }
  }

  private async _follow(path: string): Promise<void> {
    if (this._following) {
      return;
    }
    this._following = true;
    try {
      while (this._run?.running && path === this._path && !this.isDisposed) {
        const run = this._run;
        const state = await this._api.events(path, run.id, run.offset);
        run.offset = state.offset;
        run.running = state.running;
        state.events.forEach(e => applyEvent(run, e));
        if (!state.running && state.returncode !== null && state.returncode !== 0) {
          run.failed = true;
          run.outcome = state.message ?? `the run exited with status ${state.returncode}`;
        }
        this._render();
        if (run.running) {
          await new Promise(resolve => setTimeout(resolve, 800));
        }
      }
    } catch (error) {
      this._error = (error as Error).message;
    } finally {
      this._following = false;
    }
    if (path === this._path && !this.isDisposed) {
      await this.refresh();
    }
  }

  private _render(): void {
    const node = this.node;
    node.replaceChildren();
    const header = el('div', 'jp-nbprod-panel-header', '');
    header.appendChild(el('h2', '', 'Models'));
    const o = this._overview;
    header.appendChild(el('span', 'jp-nbprod-root', o ? `${o.model} · /${o.root}` : ''));
    node.appendChild(header);
    const tools = el('div', 'jp-nbprod-toolbar', '');
    tools.appendChild(button('Refresh', 'jp-nbprod-models-refresh', !!this._busy, () => void this.refresh()));
    node.appendChild(tools);
    if (o) {
      const who = o.user.shared_token
        ? `Signed in with the server's shared token (${o.user.display_name}): decisions record the name you type.`
        : `Signed in as ${o.user.display_name} (${o.user.username}): decisions are recorded under this name.`;
      node.appendChild(el('div', 'jp-nbprod-models-user', who));
    }
    if (this._error) {
      node.appendChild(el('div', 'jp-nbprod-error', this._error));
    }
    if (this._notice) {
      node.appendChild(el('div', 'jp-nbprod-models-notice', this._notice));
    }
    if (this._busy) {
      node.appendChild(el('div', 'jp-nbprod-busy', this._busy));
    }
    if (!o) {
      return;
    }
    node.appendChild(this._production(o));
    node.appendChild(this._retrainBox());
    node.appendChild(this._candidates(o));
    node.appendChild(this._history(o));
    if (this._details) {
      node.appendChild(this._versionBox(this._details));
    }
  }

  private _production(o: ModelsOverview): HTMLElement {
    const box = section('In production', 'jp-nbprod-production');
    const p = o.production;
    if (!p) {
      box.appendChild(el('div', 'jp-nbprod-muted', 'Nothing in production yet: retrain, then approve a candidate.'));
      return box;
    }
    box.dataset.version = p.version;
    const line = el('div', 'jp-nbprod-production-version', '');
    line.appendChild(el('strong', '', p.version));
    line.appendChild(
      document.createTextNode(` since ${when(p.since)} · ${p.action === 'rollback' ? 'rolled back' : 'approved'} by ${p.by ?? '?'}`)
    );
    box.appendChild(line);
    if (p.note) {
      box.appendChild(el('div', 'jp-nbprod-note', `“${p.note}”`));
    }
    box.appendChild(metricsTable(headline(p.metrics, o.gate_metrics)));
    return box;
  }

  private _retrainBox(): HTMLElement {
    const box = section('Retrain', 'jp-nbprod-retrain-box');
    const running = !!this._run?.running;
    const row = el('div', 'jp-nbprod-retrain-form', '');
    this._noteInput.name = 'nbprod-retrain-note';
    this._noteInput.placeholder = 'why (optional)';
    this._setInput.name = 'nbprod-retrain-set';
    this._setInput.placeholder = 'params for this candidate, e.g. model.C=0.5 (optional)';
    row.appendChild(this._noteInput);
    row.appendChild(this._setInput);
    box.appendChild(row);
    const tools = el('div', 'jp-nbprod-toolbar', '');
    tools.appendChild(button('Retrain', 'jp-nbprod-retrain', running || !!this._busy, () => void this.retrain()));
    tools.appendChild(button('Cancel', 'jp-nbprod-retrain-cancel', !running, () => void this.cancel()));
    box.appendChild(tools);
    const run = this._run;
    if (run) {
      const status = el('div', 'jp-nbprod-retrain-status', '');
      status.dataset.running = String(run.running);
      if (run.running) {
        const stage = run.stage ? `running ${run.stage}: cell ${run.index}/${run.cells}` : run.step || 'starting…';
        status.appendChild(el('div', 'jp-nbprod-progress-text', `Run ${run.id}: ${stage}`));
        const bar = el('progress', 'jp-nbprod-progress', '') as HTMLProgressElement;
        bar.max = run.cells || 1;
        bar.value = run.index;
        status.appendChild(bar);
      } else {
        status.appendChild(
          el('div', run.failed ? 'jp-nbprod-run-failed' : 'jp-nbprod-run-ok', `Run ${run.id}: ${run.outcome ?? 'finished'}`)
        );
      }
      box.appendChild(status);
    }
    return box;
  }

  private _candidates(o: ModelsOverview): HTMLElement {
    const box = section('Candidates waiting for a decision', 'jp-nbprod-candidates');
    if (!o.candidates.length) {
      box.appendChild(el('div', 'jp-nbprod-muted', 'None.'));
    }
    const locked = !!this._run?.running || !!this._busy;
    for (const c of o.candidates) {
      const card = el('div', 'jp-nbprod-candidate', '');
      card.dataset.candidate = c.id;
      card.dataset.passed = String(c.gates_passed);
      const top = el('div', 'jp-nbprod-candidate-top', '');
      top.appendChild(el('strong', '', c.id));
      top.appendChild(el('span', `jp-nbprod-verdict jp-nbprod-verdict-${c.gates_passed ? 'pass' : 'fail'}`,
        c.gates_passed ? 'passed its gates' : 'FAILED a gate'));
      top.appendChild(el('span', 'jp-nbprod-muted', ` trained ${when(c.created)}`));
      card.appendChild(top);
      if (c.note) {
        card.appendChild(el('div', 'jp-nbprod-note', `“${c.note}”`));
      }
      const gates = el('ul', 'jp-nbprod-gates', '');
      for (const g of c.gates) {
        const item = el('li', 'jp-nbprod-gate', '');
        item.dataset.passed = String(g.passed);
        item.appendChild(el('span', `jp-nbprod-gate-state jp-nbprod-gate-${gateState(g)}`, gateState(g)));
        item.appendChild(document.createTextNode(' ' + gateText(g)));
        gates.appendChild(item);
      }
      card.appendChild(gates);
      card.appendChild(compareTable(c.metrics, c.champion?.metrics_on_holdout ?? null, c.champion?.version ?? null, o.gate_metrics));
      card.appendChild(changedList(c));
      const actions = el('div', 'jp-nbprod-stage-actions', '');
      if (c.report) {
        actions.appendChild(link('comparison report', 'jp-nbprod-candidate-report', () =>
          window.open(this._api.reportUrl(this._path, c.id), '_blank')
        ));
      }
      actions.appendChild(button('Approve…', 'jp-nbprod-approve', locked, () => void this.approve(c)));
      actions.appendChild(button('Reject…', 'jp-nbprod-reject', locked, () => void this.reject(c)));
      card.appendChild(actions);
      box.appendChild(card);
    }
    return box;
  }

  private _history(o: ModelsOverview): HTMLElement {
    const box = section('History', 'jp-nbprod-history');
    const filters = el('div', 'jp-nbprod-history-filters', '');
    // The same elements on every render: typing in the filter keeps its focus while a run is polled.
    filters.appendChild(this._filterInput);
    filters.appendChild(this._actionSelect);
    box.appendChild(filters);
    this._historyList = el('div', 'jp-nbprod-history-list', '');
    this._fillHistory();
    box.appendChild(this._historyList);
    return box;
  }

  private _fillHistory(): void {
    const o = this._overview;
    const list = this._historyList;
    if (!o || !list) {
      return;
    }
    list.replaceChildren();
    const rows = o.history.filter(e => matches(e, this._filterInput.value, this._actionSelect.value)).reverse();
    for (const event of rows) {
      list.appendChild(this._historyRow(event, o));
    }
    if (!rows.length) {
      list.appendChild(el('div', 'jp-nbprod-muted', o.history.length ? 'Nothing matches.' : 'No decisions yet.'));
    }
  }

  private _makeFilters(): void {
    this._filterInput.name = 'nbprod-history-filter';
    this._filterInput.placeholder = 'filter: version, person, note…';
    this._actionSelect.name = 'nbprod-history-action';
    for (const [value, label] of [['', 'all actions'], ['approve', 'approvals'], ['reject', 'rejections'],
      ['rollback', 'rollbacks'], ['register', 'registrations']]) {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = label;
      this._actionSelect.appendChild(option);
    }
    this._filterInput.addEventListener('input', () => this._fillHistory());
    this._actionSelect.addEventListener('change', () => this._fillHistory());
  }

  private _historyRow(event: HistoryEvent, o: ModelsOverview): HTMLElement {
    const row = el('div', 'jp-nbprod-history-row', '');
    row.dataset.action = event.action;
    row.dataset.version = event.version ?? '';
    row.appendChild(el('span', 'jp-nbprod-history-when', when(event.when ?? event.date)));
    row.appendChild(el('span', `jp-nbprod-history-action jp-nbprod-action-${event.action}`, actionLabel(event)));
    if (event.version) {
      const version = o.versions.find(v => v.version === event.version);
      row.appendChild(link(event.version, 'jp-nbprod-lineage-link', () => void this.showVersion(event.version!)));
      if (version?.in_production && event.tag === o.production?.tag) {
        row.appendChild(el('span', 'jp-nbprod-prod-badge', 'prod'));
      }
    }
    if (event.by) {
      row.appendChild(el('span', 'jp-nbprod-history-by', `by ${event.by}`));
    }
    // A registration carries its approval's record; the approval's row shows the note once.
    if (event.note && event.action !== 'register') {
      row.appendChild(el('span', 'jp-nbprod-history-note', `“${event.note}”`));
    }
    if (event.override && event.action !== 'register') {
      row.appendChild(el('span', 'jp-nbprod-history-override', `override: ${event.override}`));
    }
    return row;
  }

  private _versionBox(d: VersionDetails): HTMLElement {
    const box = section(`Version ${d.version}`, 'jp-nbprod-version-details');
    box.dataset.version = d.version;
    const facts: [string, string][] = [
      ['tag', d.tag],
      ['commit', d.commit.slice(0, 10)],
      ['registered', when(d.date) + (d.record.by ? ` by ${d.record.by}` : '') + (d.record.candidate ? ` (candidate ${d.record.candidate})` : '')],
      ['model', `${d.model_path} (md5 ${d.model_md5 ?? '?'})`],
      ['stage', d.stage ? `${d.stage}: ${d.cmd}` : '?'],
      ['params', Object.entries(d.params).map(([k, v]) => `${k}=${String(v)}`).join(', ') || 'none'],
      ['environment', d.environment ? `python ${d.environment.python ?? '?'}, packages ${String(d.environment.packages_sha256 ?? '?').slice(0, 12)}` : 'not recorded']
    ];
    const table = el('table', 'jp-nbprod-lineage', '');
    for (const [key, value] of facts) {
      const tr = el('tr', '', '');
      tr.appendChild(el('th', '', key));
      tr.appendChild(el('td', '', value));
      table.appendChild(tr);
    }
    for (const [path, md5] of Object.entries(d.inputs)) {
      const tr = el('tr', '', '');
      tr.appendChild(el('th', '', 'input'));
      tr.appendChild(el('td', '', `${path} (md5 ${md5.slice(0, 12)})`));
      table.appendChild(tr);
    }
    box.appendChild(table);
    box.appendChild(el('h4', '', 'A rollback to this version would change'));
    box.appendChild(changesTable(d.changes));
    const inProd = this._overview?.production?.version === d.version;
    const tools = el('div', 'jp-nbprod-toolbar', '');
    tools.appendChild(
      button(`Roll back to ${d.version}…`, 'jp-nbprod-rollback', inProd || !!this._run?.running || !!this._busy, () => void this.rollback(d))
    );
    tools.appendChild(button('Close', 'jp-nbprod-version-close', false, () => {
      this._details = null;
      this._render();
    }));
    box.appendChild(tools);
    return box;
  }

  private _path = '';
  private _overview: ModelsOverview | null = null;
  private _details: VersionDetails | null = null;
  private _run: Following | null = null;
  private _error: string | null = null;
  private _notice: string | null = null;
  private _busy: string | null = null;
  private _stale = true;
  private _following = false;
  private _filterInput = document.createElement('input');
  private _actionSelect = document.createElement('select');
  private _historyList: HTMLElement | null = null;
  private _noteInput = document.createElement('input');
  private _setInput = document.createElement('input');
}

function following(id: string): Following {
  return { id, running: true, offset: 0, step: '', stage: null, index: 0, cells: 0, outcome: null, failed: false };
}

function applyEvent(run: Following, e: RunEventLine): void {
  if (e.event === 'retrain_step') {
    run.step = e.message ?? '';
  } else if ((e.event === 'stage_start' || e.event === 'cell') && e.stage) {
    run.stage = e.stage;
    run.index = e.index ?? 0;
    run.cells = e.cells ?? 0;
  } else if (e.event === 'stage_end') {
    run.stage = null;
  } else if (e.event === 'retrain_end') {
    run.outcome = `candidate ${e.candidate} ${e.gates_passed ? 'passed its gates' : 'FAILED a gate'}`;
  } else if (e.event === 'run_end' && !run.outcome) {
    run.outcome = e.ok ? 'the run succeeded' : `the run failed${e.message ? ': ' + e.message : ''}`;
    run.failed = !e.ok;
  }
}
