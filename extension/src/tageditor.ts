/**
 * The dialog behind a cell's chip: assign the cell to a stage, create or rename a stage, mark it
 * parameters/shared/skip, and declare after/deps/outs/metrics/plots. It only edits metadata.tags.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { TagChoice, applyChoice } from './tagchoice';
import { CellPlace, IoKind, TagParser } from './tags';

class TagEditorBody extends Widget implements Dialog.IBodyWidget<TagChoice> {
  constructor(tags: string[], place: CellPlace, stages: string[], parser: TagParser) {
    super();
    this.addClass('jp-nbprod-editor');
    const current =
      place.kind === 'stage' ? (place.starts ? `stage:${place.stage}` : 'follow') : place.kind === 'invalid' ? 'follow' : place.kind;
    const options = [
      ['follow', 'Continue the stage above'],
      ...stages.map(s => [`stage:${s}`, `Start of stage ${s}`]),
      ['new', 'New stage…'],
      ['parameters', 'Parameters cell'],
      ['shared', 'Shared (imports, helpers)'],
      ['skip', 'Skip (exploration)']
    ];
    this._role = select('nbprod-role', options, current);
    this._newStage = input('nbprod-new-stage', '', 'new stage name, e.g. train');
    this._rename = input('nbprod-rename', place.starts && place.stage ? place.stage : '', 'stage name');
    this._addKind = select(
      'nbprod-add-kind',
      ['deps', 'outs', 'metrics', 'plots', 'after'].map(k => [k, `${k}:`]),
      'deps'
    );
    this._addValue = input('nbprod-add-value', '', 'data/train.parquet or a stage name');

    const node = this.node;
    node.appendChild(row('This cell', this._role));
    const newRow = row('Stage name', this._newStage);
    node.appendChild(newRow);
    const sync = () => {
      newRow.style.display = this._role.value === 'new' ? '' : 'none';
    };
    this._role.addEventListener('change', sync);
    sync();
    if (place.starts && place.stage) {
      node.appendChild(row(`Rename stage ${place.stage} to`, this._rename));
    }
    const io = parser.ioTags(tags);
    if (io.length) {
      const list = document.createElement('div');
      list.className = 'jp-nbprod-editor-io';
      list.appendChild(text('label', 'Files and ordering (untick to remove)'));
      for (const tag of io) {
        const box = document.createElement('input');
        box.type = 'checkbox';
        box.checked = true;
        box.value = tag;
        this._ioBoxes.push(box);
        const label = document.createElement('label');
        label.appendChild(box);
        label.appendChild(document.createTextNode(' ' + tag));
        list.appendChild(label);
      }
      node.appendChild(list);
    }
    const add = document.createElement('div');
    add.className = 'jp-nbprod-editor-row';
    add.appendChild(text('label', 'Add'));
    add.appendChild(this._addKind);
    add.appendChild(this._addValue);
    node.appendChild(add);
    const rules = document.createElement('details');
    rules.appendChild(text('summary', 'Tag rules'));
    for (const rule of parser.schema.rules) {
      rules.appendChild(text('p', rule));
    }
    node.appendChild(rules);
  }

  getValue(): TagChoice {
    return {
      role: this._role.value,
      newStage: this._newStage.value.trim(),
      rename: this._rename.value.trim(),
      keepIo: this._ioBoxes.filter(b => b.checked).map(b => b.value),
      addKind: this._addKind.value as IoKind,
      addValue: this._addValue.value.trim()
    };
  }

  private _role: HTMLSelectElement;
  private _newStage: HTMLInputElement;
  private _rename: HTMLInputElement;
  private _addKind: HTMLSelectElement;
  private _addValue: HTMLInputElement;
  private _ioBoxes: HTMLInputElement[] = [];
}

/** Ask the user how to tag a cell; null when cancelled or refused. */
export async function editCellTags(
  parser: TagParser,
  tags: string[],
  place: CellPlace,
  stages: string[]
): Promise<{ tags: string[]; rename: [string, string] | null } | null> {
  const result = await showDialog({
    title: 'nbprod: cell tags',
    body: new TagEditorBody(tags, place, stages, parser),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Apply' })]
  });
  if (!result.button.accept || !result.value) {
    return null;
  }
  try {
    return applyChoice(parser, tags, place, result.value);
  } catch (error) {
    await showErrorMessage('nbprod: tag not applied', (error as Error).message);
    return null;
  }
}

function select(name: string, options: string[][], value: string): HTMLSelectElement {
  const node = document.createElement('select');
  node.name = name;
  for (const [v, label] of options) {
    const option = document.createElement('option');
    option.value = v;
    option.textContent = label;
    node.appendChild(option);
  }
  node.value = value;
  return node;
}

function input(name: string, value: string, placeholder: string): HTMLInputElement {
  const node = document.createElement('input');
  node.name = name;
  node.value = value;
  node.placeholder = placeholder;
  return node;
}

function row(label: string, control: HTMLElement): HTMLElement {
  const node = document.createElement('div');
  node.className = 'jp-nbprod-editor-row';
  node.appendChild(text('label', label));
  node.appendChild(control);
  return node;
}

function text(tag: string, content: string): HTMLElement {
  const node = document.createElement(tag);
  node.textContent = content;
  return node;
}
