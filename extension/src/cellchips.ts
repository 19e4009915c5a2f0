/**
 * A chip on every code cell of a notebook: the cell's stage (coloured by stage) or its role
 * (parameters, shared, skip), or the broken tag. Clicking the chip opens the tag editor.
 */
import { Cell, ICellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { PathExt } from '@jupyterlab/coreutils';
import { IDisposable } from '@lumino/disposable';
import { PanelLayout, Widget } from '@lumino/widgets';

import { editCellTags } from './tageditor';
import { CellPlace, TagParser, stageHue } from './tags';

class CellChip extends Widget {
  constructor(onClick: () => void) {
    super({ node: document.createElement('button') });
    this.addClass('jp-nbprod-chip');
    this.node.setAttribute('type', 'button');
    this.node.addEventListener('click', event => {
      event.stopPropagation();
      onClick();
    });
  }

  show_(place: CellPlace, tags: string[], ioTags: string[]): void {
    const node = this.node;
    node.className = `jp-nbprod-chip jp-nbprod-chip-${place.kind}` + (place.starts ? ' jp-nbprod-chip-start' : '');
    node.dataset.kind = place.kind;
    node.dataset.stage = place.stage ?? '';
    node.style.removeProperty('--jp-nbprod-hue');
    let label: string;
    if (place.kind === 'stage' && place.stage) {
      node.style.setProperty('--jp-nbprod-hue', String(stageHue(place.stage)));
      label = place.starts ? `stage ${place.stage}` : place.stage;
    } else if (place.kind === 'invalid' && place.error) {
      label = `invalid tag: ${place.error.tag}`;
    } else {
      label = place.kind;
    }
    if (ioTags.length) {
      label += `  ·  ${ioTags.join('  ')}`;
    }
    node.textContent = label;
    node.title =
      place.kind === 'invalid' && place.error
        ? `${place.error.message}. Fix: ${place.error.fix}`
        : `tags: ${tags.join(', ') || '(none)'} — click to change`;
  }
}

/** Keeps the chips of one notebook in step with its cells' tags. */
export class NotebookChips implements IDisposable {
  constructor(private _panel: NotebookPanel, private _parser: TagParser) {
    const notebook = _panel.content;
    notebook.model?.cells.changed.connect(this._schedule, this);
    notebook.modelChanged.connect(this._schedule, this);
    _panel.context.pathChanged.connect(this._schedule, this);
    this._schedule();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    this._disposed = true;
  }

  /** Recompute every chip: one cell's tags can move the cells after it to another stage. */
  refresh(): void {
    if (this._disposed || this._panel.isDisposed) {
      return;
    }
    const notebook = this._panel.content;
    const code = notebook.widgets.filter(cell => cell.model.type === 'code');
    for (const cell of code) {
      if (!this._watched.has(cell.model)) {
        this._watched.add(cell.model);
        cell.model.metadataChanged.connect(this._schedule, this);
      }
    }
    const tags = code.map(cell => cellTags(cell.model));
    const stem = PathExt.basename(this._panel.context.path, '.ipynb');
    const places = this._parser.placeCells(tags, stem);
    this._places = new Map();
    code.forEach((cell, i) => {
      this._places.set(cell, places[i]);
      this._chipOf(cell).show_(places[i], tags[i] as string[], this._parser.ioTags(tags[i] as string[]));
    });
  }

  private _chipOf(cell: Cell): CellChip {
    let chip = this._chips.get(cell);
    if (!chip || chip.isDisposed) {
      chip = new CellChip(() => void this._edit(cell));
      (cell.layout as PanelLayout).insertWidget(0, chip);
      this._chips.set(cell, chip);
    }
    return chip;
  }

  private async _edit(cell: Cell): Promise<void> {
    const place = this._places.get(cell);
    if (!place) {
      return;
    }
    const stages = [...new Set([...this._places.values()].filter(p => p.starts).map(p => p.stage as string))];
    const tags = cellTags(cell.model).filter((t): t is string => typeof t === 'string');
    const result = await editCellTags(this._parser, tags, place, stages);
    if (!result) {
      return;
    }
    setTags(cell.model, result.tags);
    if (result.rename) {
      const [from, to] = result.rename;
      for (const other of this._panel.content.widgets) {
        const before = cellTags(other.model).filter((t): t is string => typeof t === 'string');
        const after = this._parser.renameStage(before, from, to);
        if (after.join('\n') !== before.join('\n')) {
          setTags(other.model, after);
        }
      }
    }
    this.refresh();
  }

  private _schedule(): void {
    if (this._pending) {
      return;
    }
    this._pending = true;
    requestAnimationFrame(() => {
      this._pending = false;
      this.refresh();
    });
  }

  private _disposed = false;
  private _pending = false;
  private _chips = new WeakMap<Cell, CellChip>();
  private _places = new Map<Cell, CellPlace>();
  private _watched = new WeakSet<ICellModel>();
}

function cellTags(model: ICellModel): unknown[] {
  const tags = model.getMetadata('tags');
  return Array.isArray(tags) ? tags : [];
}

/** Write exactly the tags the CLI reads; an empty list removes the key, as Lab's tag editor does. */
function setTags(model: ICellModel, tags: string[]): void {
  if (tags.length) {
    model.setMetadata('tags', tags);
  } else {
    model.deleteMetadata('tags');
  }
}
