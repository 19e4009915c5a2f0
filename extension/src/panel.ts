/**
 * The pipeline side panel: the DAG, each stage's status and why, run/run-from/cancel, live progress
 * from the run's events, the last run's metrics, and links to executed notebooks and HTML reports.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { NbprodApi, PipelineInfo, RunEvent, StageInfo, StageStatus } from './api';
import { renderDag } from './dag';
import { RunStageState } from './states';
import { stageHue } from './tags';

interface StageProgress {
  state: RunStageState;
  index: number;
  cells: number;
  duration?: number;
}

interface RunView {
  id: string;
  running: boolean;
  offset: number;
  progress: Map<string, StageProgress>;
  metrics: Map<string, Record<string, unknown>>;
  current: string | null;
  ended: { ok: boolean; message: string } | null;
}

export interface PanelOptions {
  api: NbprodApi;
  openNotebook: (path: string) => void;
}

export class PipelinePanel extends Widget {
  constructor(private _options: PanelOptions) {
    super();
    this.id = 'nbprod-pipeline-panel';
    this.addClass('jp-nbprod-panel');
    this.title.caption = 'nbprod pipeline';
    this._render();
  }

  /** The server-relative folder whose project the panel shows (the current notebook's folder). */
  setPath(path: string): void {
    if (path !== this._path) {
      this._path = path;
      this._pipeline = null;
      this._statuses = new Map();
      this._run = null;
      this.refreshSoon();
    }
  }

  /** Refresh now if visible, or when next shown (status asks DVC, which takes a second). */
  refreshSoon(): void {
    if (this.isVisible) {
      void this.refresh();
    } else {
      this._stale = true;
    }
  }

  async refresh(): Promise<void> {
    const { api } = this._options;
    const path = this._path;
    this._busy = 'Reading the pipeline…';
    this._render();
    try {
      this._pipeline = await api.pipeline(path);
      this._error = null;
      const status = await api.status(path);
      if (status.stages.length || !status.running) {
        this._statuses = new Map(status.stages.map(s => [s.name, s]));
      }
      if (!this._run) {
        const runs = await api.runs(path);
        if (runs.runs.length) {
          this._run = newRun(runs.runs[0].id, runs.runs[0].running);
          await this._poll(path);
        }
      }
      if (status.running && (!this._run || this._run.id !== status.running || !this._following)) {
        if (!this._run || this._run.id !== status.running) {
          this._run = newRun(status.running, true);
        }
        void this._follow(path);
      }
    } catch (error) {
      this._error = (error as Error).message;
    } finally {
      this._busy = null;
      this._render();
    }
  }

  async run(stages: string[], from: string | null): Promise<void> {
    const path = this._path;
    try {
      const started = await this._options.api.startRun(path, stages, from, this._keepGoing);
      this._run = newRun(started.id, true);
      this._error = null;
      this._render();
      await this._follow(path);
    } catch (error) {
      this._error = (error as Error).message;
      this._render();
    }
  }

  /** Open the stage on its own, inputs loaded from the DVC cache, as a notebook in Lab. */
  async debug(stage: string): Promise<void> {
    this._busy = `Preparing the debug notebook of ${stage}…`;
    this._render();
    try {
      const { notebook } = await this._options.api.debug(this._path, stage);
      this._error = null;
      this._options.openNotebook(notebook);
    } catch (error) {
      this._error = (error as Error).message;
    } finally {
      this._busy = null;
      this._render();
    }
  }

  async cancel(): Promise<void> {
    if (this._run?.running) {
      try {
        await this._options.api.cancel(this._path, this._run.id);
      } catch (error) {
        this._error = (error as Error).message;
        this._render();
      }
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (this._stale || !this._pipeline) {
      this._stale = false;
      void this.refresh();
    }
  }

  private async _follow(path: string): Promise<void> {
    if (this._following) {
      return;
    }
    this._following = true;
    try {
      while (this._run && this._run.running && path === this._path && !this.isDisposed) {
        await this._poll(path);
        this._render();
        if (this._run?.running) {
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

  private async _poll(path: string): Promise<void> {
    const run = this._run;
    if (!run) {
      return;
    }
    const state = await this._options.api.events(path, run.id, run.offset);
    run.offset = state.offset;
    run.running = state.running;
    state.events.forEach(e => applyEvent(run, e));
    if (!state.running && !run.ended && state.returncode !== null && state.returncode !== 0) {
      run.ended = { ok: false, message: state.message ?? `the run exited with status ${state.returncode}` };
    }
  }

  private _render(): void {
    const node = this.node;
    node.replaceChildren();
    const header = el('div', 'jp-nbprod-panel-header');
    header.appendChild(el('h2', '', 'Pipeline'));
    header.appendChild(el('span', 'jp-nbprod-root', this._pipeline ? `/${this._pipeline.root}` : ''));
    node.appendChild(header);

    const running = !!this._run?.running;
    const tools = el('div', 'jp-nbprod-toolbar');
    tools.appendChild(button('Run all', 'jp-nbprod-run-all', running || !this._pipeline, () => void this.run([], null)));
    tools.appendChild(button('Cancel', 'jp-nbprod-cancel', !running, () => void this.cancel()));
    tools.appendChild(button('Refresh', 'jp-nbprod-refresh', !!this._busy, () => void this.refresh()));
    tools.appendChild(this._keepGoingBox(running));
    node.appendChild(tools);

    if (this._error) {
      node.appendChild(el('div', 'jp-nbprod-error', this._error));
    }
    if (this._busy) {
      node.appendChild(el('div', 'jp-nbprod-busy', this._busy));
    }
    node.appendChild(this._runSummary());
    if (!this._pipeline) {
      return;
    }
    const stages = this._pipeline.stages;
    const dag = el('div', 'jp-nbprod-dag-box');
    dag.appendChild(renderDag(stages.map(s => ({ name: s.name, upstream: s.upstream, state: this._stateOf(s.name).state }))));
    node.appendChild(dag);
    const list = el('div', 'jp-nbprod-stages');
    for (const stage of stages) {
      list.appendChild(this._stageRow(stage, running));
    }
    node.appendChild(list);
    const carried = this._pipeline.carried_definitions ?? [];
    if (carried.length) {
      // Each function or class compile carries between stages, once, with the stages it reaches.
      const box = el('div', 'jp-nbprod-carried jp-nbprod-carried-definitions', 'Definitions carried between stages:');
      for (const d of carried) {
        const item = el('div', 'jp-nbprod-carried-definition');
        item.title = d.source;
        item.appendChild(el('code', '', `${d.kind === 'class' ? 'class' : 'def'} ${d.name}`));
        item.appendChild(document.createTextNode(` (stage ${d.stage}, cell ${d.cell}) → ${d.into.join(', ')}`));
        box.appendChild(item);
      }
      node.appendChild(box);
    }
  }

  /** `nbprod run --keep-going`: after a failure, stages that do not depend on it still run. */
  private _keepGoingBox(running: boolean): HTMLElement {
    const label = el('label', 'jp-nbprod-keep-going');
    label.title = 'After a failure, still run the stages that do not depend on the failed one';
    const box = el('input', '') as HTMLInputElement;
    box.type = 'checkbox';
    box.checked = this._keepGoing;
    box.disabled = running;
    box.addEventListener('change', () => {
      this._keepGoing = box.checked;
    });
    label.appendChild(box);
    label.appendChild(document.createTextNode(' Keep going'));
    return label;
  }

  private _runSummary(): HTMLElement {
    const box = el('div', 'jp-nbprod-run');
    const run = this._run;
    if (!run) {
      return box;
    }
    box.dataset.running = String(run.running);
    if (run.running) {
      const progress = run.current ? run.progress.get(run.current) : undefined;
      const text = progress
        ? `Running ${run.current}: cell ${progress.index}/${progress.cells}`
        : 'Starting the run…';
      box.appendChild(el('div', 'jp-nbprod-progress-text', text));
      const bar = el('progress', 'jp-nbprod-progress') as HTMLProgressElement;
      bar.max = progress?.cells || 1;
      bar.value = progress?.index ?? 0;
      box.appendChild(bar);
    } else if (run.ended) {
      const cls = run.ended.ok ? 'jp-nbprod-run-ok' : 'jp-nbprod-run-failed';
      box.appendChild(el('div', cls, `Last run ${run.id}: ${run.ended.ok ? 'succeeded' : 'failed'}${run.ended.message ? ' — ' + run.ended.message : ''}`));
    }
    return box;
  }

  private _stateOf(name: string): { state: string; detail: string } {
    const progress = this._run?.running ? this._run.progress.get(name) : undefined;
    if (progress) {
      const detail = progress.state === 'running' ? `cell ${progress.index}/${progress.cells}` : '';
      return { state: progress.state, detail };
    }
    const status: StageStatus | undefined = this._statuses.get(name);
    if (this._run?.progress.get(name)?.state === 'failed' && status?.state !== 'up to date') {
      return { state: 'failed', detail: this._run.ended?.message ?? '' };
    }
    if (!status) {
      return { state: this._run?.running ? 'waiting' : '', detail: '' };
    }
    const why = status.state === 'changed' ? status.reasons.filter(r => r !== status.state) : [];
    return { state: status.state, detail: why.join(', ') };
  }

  private _stageRow(stage: StageInfo, running: boolean): HTMLElement {
    const root = this._pipeline!.root;
    const join = (p: string) => (root ? `${root}/${p}` : p);
    const row = el('div', 'jp-nbprod-stage');
    row.dataset.stage = stage.name;
    row.style.setProperty('--jp-nbprod-hue', String(stageHue(stage.name)));
    const top = el('div', 'jp-nbprod-stage-top');
    top.appendChild(el('span', 'jp-nbprod-stage-name', stage.name));
    const { state, detail } = this._stateOf(stage.name);
    const badge = el('span', `jp-nbprod-state jp-nbprod-state-${state.replace(/ /g, '-') || 'unknown'}`, state || '…');
    badge.dataset.state = state;
    top.appendChild(badge);
    if (detail) {
      top.appendChild(el('span', 'jp-nbprod-reasons', state === 'changed' ? `(${detail})` : detail));
    }
    row.appendChild(top);
    row.appendChild(el('div', 'jp-nbprod-stage-source', `${stage.notebook} · cells ${stage.cells.join(', ')}`));
    const carried = stage.carried_imports ?? [];
    if (carried.length) {
      // Imports of earlier stages this stage uses: compile repeats them in a prelude cell of the stage.
      const box = el('div', 'jp-nbprod-carried', 'Imports carried in: ');
      box.title = carried.map(c => `${c.source}  (stage ${c.stage}, cell ${c.cell})`).join('\n');
      carried.forEach((c, i) => {
        box.appendChild(el('code', 'jp-nbprod-carried-import', c.source.replace(/\s+/g, ' ')));
        box.appendChild(document.createTextNode(i < carried.length - 1 ? ', ' : ` (from ${[...new Set(carried.map(x => x.stage))].join(', ')})`));
      });
      row.appendChild(box);
    }
    const definitions = stage.carried_definitions ?? [];
    if (definitions.length) {
      const box = el('div', 'jp-nbprod-carried', `Definitions carried in: ${definitions.map(d => d.name).join(', ')}`);
      box.title = definitions.map(d => `${d.name}  (stage ${d.stage}, cell ${d.cell}, line ${d.line})`).join('\n');
      row.appendChild(box);
    }

    const actions = el('div', 'jp-nbprod-stage-actions');
    actions.appendChild(button('Run', 'jp-nbprod-run-stage', running, () => void this.run([stage.name], null)));
    actions.appendChild(button('Run from here', 'jp-nbprod-run-from', running, () => void this.run([], stage.name)));
    // Debugging loads the stage's inputs from the DVC cache: upstream stages must have run once.
    const debuggable = stage.upstream.every(up => {
      const s = this._statuses.get(up)?.state;
      return s !== undefined && s !== 'never run';
    });
    actions.appendChild(
      button('Debug', 'jp-nbprod-debug', running || !debuggable, () => void this.debug(stage.name))
    );
    if (state && state !== 'never run' && state !== 'waiting') {
      actions.appendChild(link('executed notebook', 'jp-nbprod-open-notebook', () =>
        this._options.openNotebook(join(stage.executed_notebook))
      ));
      actions.appendChild(link('report', 'jp-nbprod-open-report', () =>
        window.open(this._options.api.fileUrl(join(stage.report)), '_blank')
      ));
    }
    row.appendChild(actions);

    const metrics = this._run?.metrics.get(stage.name);
    if (metrics && Object.keys(metrics).length) {
      const table = el('table', 'jp-nbprod-metrics');
      for (const [key, value] of Object.entries(metrics)) {
        const tr = el('tr', '');
        tr.appendChild(el('th', '', key));
        tr.appendChild(el('td', '', formatValue(value)));
        table.appendChild(tr);
      }
      row.appendChild(table);
    }
    return row;
  }

  private _path = '';
  private _pipeline: PipelineInfo | null = null;
  private _statuses = new Map<string, StageStatus>();
  private _run: RunView | null = null;
  private _error: string | null = null;
  private _busy: string | null = null;
  private _stale = true;
  private _following = false;
  private _keepGoing = false;
}

function newRun(id: string, running: boolean): RunView {
  return { id, running, offset: 0, progress: new Map(), metrics: new Map(), current: null, ended: null };
}

function applyEvent(run: RunView, event: RunEvent): void {
  const stage = event.stage;
  if (event.event === 'stage_start' && stage) {
    run.current = stage;
    run.progress.set(stage, { state: 'running', index: 0, cells: event.cells ?? 0 });
  } else if (event.event === 'cell' && stage) {
    run.current = stage;
    run.progress.set(stage, { state: 'running', index: event.index ?? 0, cells: event.cells ?? 0 });
  } else if (event.event === 'stage_end' && stage) {
    const before = run.progress.get(stage);
    run.progress.set(stage, {
      state: event.state ?? 'ran',
      index: before?.cells ?? 0,
      cells: before?.cells ?? 0,
      duration: event.duration
    });
    if (event.metrics && Object.keys(event.metrics).length) {
      run.metrics.set(stage, event.metrics);
    }
    if (run.current === stage) {
      run.current = null;
    }
  } else if (event.event === 'run_end') {
    run.ended = { ok: !!event.ok, message: event.message ?? '' };
  }
}

function formatValue(value: unknown): string {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function el(tag: string, cls: string, text?: string): HTMLElement {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function button(label: string, cls: string, disabled: boolean, onClick: () => void): HTMLButtonElement {
  const node = el('button', `jp-nbprod-button ${cls}`, label) as HTMLButtonElement;
  node.type = 'button';
  node.disabled = disabled;
  node.addEventListener('click', onClick);
  return node;
}

function link(label: string, cls: string, onClick: () => void): HTMLElement {
  const node = el('a', `jp-nbprod-link ${cls}`, label);
  node.setAttribute('href', '#');
  node.addEventListener('click', event => {
    event.preventDefault();
    onClick();
  });
  return node;
}
